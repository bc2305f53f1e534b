"""The DuckDB file, its writer lock, and the ``_kto_build`` state schema.

One writer: ``writer_lock()`` takes an exclusive lock (flock) on ``<db>.lock`` for
the whole run, so a second ``kto-build run`` fails at once. Short holds:
DuckDB locks the whole file for a writing process, so the runner opens a
connection per node (per batch for long nodes) and closes it in between;
users can query the file with the duckdb CLI while a long run goes on.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from .errors import KtoBuildError, LockError
from .sql import literal

SCHEMA = "_kto_build"
#: every generation ever paid for (never dropped by a rebuild): the one name of the cache table
GENERATION_CACHE = f"{SCHEMA}.generations"
#: longest a generation batcher keeps its write connection before it lets readers in (after a commit)
HOLD_SECONDS = 1.0
#: longest a chain of SQL nodes keeps its shared write connection when no reader announced itself; each
#: release checkpoints the file (~0.05 s with a large WAL: 1.18x bare DuckDB on the 10k cold build at 1 s)
CHAIN_HOLD_SECONDS = 10.0
#: DuckDB files this process opened (tests check that a no-op run opens none)
OPENS = 0
_HOLDER = re.compile(r"Conflicting lock is held in (\S+) \(PID (\d+)\)")


class DatabaseBusyError(KtoBuildError):
    """Another process has the DuckDB file open (a reader's shell, a notebook, a writer)."""

    def __init__(self, display: str, duckdb_message: str):
        m = _HOLDER.search(duckdb_message)
        self.program, self.pid = (os.path.basename(m.group(1)), int(m.group(2))) if m else (None, None)
        self.reader = "read-only mode" in duckdb_message  # DuckDB adds "you would be able to open ... read-only"
        super().__init__(f"cannot open {display}: {self.holder_text()}",
                         hint="close that duckdb shell or notebook connection, or open it with read_only=True "
                              "and close it between queries")

    def holder_text(self) -> str:
        who = f"{self.program} (pid {self.pid})" if self.pid else "another process"
        return f"{who} holds the file {'as a reader' if self.reader else 'open for writing'}"


class CorruptDatabaseError(KtoBuildError):
    """The file is not a readable DuckDB database."""

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.nodes (
    name VARCHAR PRIMARY KEY,
    kind VARCHAR NOT NULL,
    fingerprint VARCHAR NOT NULL,
    data_version VARCHAR NOT NULL,
    inputs JSON,
    rows BIGINT,
    built_at TIMESTAMP,
    seconds DOUBLE,
    extra JSON
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.runs (
    run_id VARCHAR,
    command VARCHAR,
    target VARCHAR,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    built INTEGER,
    skipped INTEGER,
    failed INTEGER
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.node_history (
    node VARCHAR NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    status VARCHAR NOT NULL,
    rows BIGINT,
    seconds DOUBLE,
    fingerprint VARCHAR
);
ALTER TABLE {SCHEMA}.node_history ADD COLUMN IF NOT EXISTS message VARCHAR;
"""


@dataclass
class NodeState:
    """A node's stored state row (_kto_build.nodes): fingerprint, data version, rows, build time."""

    name: str
    kind: str
    fingerprint: str
    data_version: str
    inputs: dict = field(default_factory=dict)
    rows: int | None = None
    built_at: datetime | None = None
    seconds: float | None = None
    extra: dict = field(default_factory=dict)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Database:
    """The project's DuckDB file."""

    def __init__(self, path: str | Path, variables: dict | None = None, display: str | None = None):
        self.path = Path(path)
        self.display = display or str(path)
        self.variables = dict(variables or {})
        self._held: duckdb.DuckDBPyConnection | None = None
        self._held_since = 0.0
        self._holding = False
        #: called once when a read-only open has waited a second for a run (the CLI prints it)
        self.on_wait = None

    # ------------------------------------------------------------------ locks
    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Hold the single-writer lock; fail at once if another run holds it.

        flock on POSIX (what ``filelock`` uses there, without its ~30 ms import on every run), ``filelock``
        elsewhere (msvcrt on Windows); the holder's pid goes to ``<db>.lock.pid`` because a contender's open
        truncates the lock file itself.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = _file_lock(self.lock_path)
        pid_file = self.lock_path.with_name(self.lock_path.name + ".pid")
        try:
            lock.acquire()
        except TimeoutError:  # filelock.Timeout is a TimeoutError too
            try:
                holder = pid_file.read_text(encoding="utf-8").strip() or "?"
            except OSError:
                holder = "?"
            raise LockError(
                f"another kto-build run (pid {holder}) is writing to {self.display}; "
                "wait for it to finish or stop it"
            ) from None
        try:
            pid_file.write_text(str(os.getpid()), encoding="utf-8")
            yield
        finally:
            lock.release()

    # ------------------------------------------------------------ connections
    def exists(self) -> bool:
        return self.path.exists()

    def hold(self) -> None:
        """Keep one write connection open for the next connect() calls.

        Opening and checkpointing the file costs ~10 ms; a run of many short
        nodes (sources, SQL models) shares one connection. Long nodes
        (generation batches, pulls) ``release()`` it so other processes can
        read the file between their batches.
        """
        self._holding = True  # opened by the first connect(), so skipped nodes open nothing

    def let_readers_in(self) -> None:
        """Between nodes: close the shared connection if a reader waits, or if held CHAIN_HOLD_SECONDS.

        A reader waiting for the file (``open_reader``: ``show``, ``docs``, a notebook using it) announces
        itself with a ``<db>.readers/<pid>`` file; then the run closes the connection at the next node
        boundary and waits (up to 2 s) until that reader has opened the file before it reopens its own.
        Without an announcement the connection is kept, since every close checkpoints the file.
        """
        if self._held is None:
            return
        if not self.reader_waits() and time.monotonic() - self._held_since < CHAIN_HOLD_SECONDS:
            return
        self.release()
        deadline = time.monotonic() + 2.0
        while self.reader_waits() and time.monotonic() < deadline:
            time.sleep(0.01)

    def reader_waits(self) -> bool:
        """A reader announced (in ``<db>.readers/``) that it waits for the file."""
        try:
            return any(self.readers_dir.iterdir())
        except OSError:  # no readers directory: nobody ever waited
            return False

    @property
    def readers_dir(self) -> Path:
        return self.path.with_name(self.path.name + ".readers")

    def release(self) -> None:
        self._holding = False
        if self._held is not None:
            con, self._held = self._held, None
            con.close()

    @contextlib.contextmanager
    def connect(self, read_only: bool = False, retries: float = 5.0) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection with the project vars set; closed on exit (unless held).

        If another process holds the file (a run between batches is brief; a
        user's open duckdb shell is not), retry for ``retries`` seconds, then
        fail with one clear line.
        """
        if self._held is None and self._holding and not read_only:
            self._held = self._open(read_only=False, retries=retries)
            self._held_since = time.monotonic()
        if self._held is not None:
            yield self._held
            return
        con = self._open(read_only, retries)
        try:
            yield con
        finally:
            con.close()

    def _open(self, read_only: bool, retries: float) -> duckdb.DuckDBPyConnection:
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if read_only:
            con = open_reader(self.path, self.display, on_wait=self.on_wait)
        else:
            deadline = time.monotonic() + retries
            while True:
                try:
                    con = _connect(self.path, self.display, read_only=False)
                    break
                except DatabaseBusyError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        for name, value in self.variables.items():
            con.execute(f"SET VARIABLE {name} = {literal(value)}")
        return con

    # ------------------------------------------------------------------ state
    @staticmethod
    def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
        con.execute(DDL)

    def read_states(self) -> dict[str, NodeState]:
        if not self.exists():
            return {}
        with self.connect(read_only=True) as con:
            return read_states(con)


class _Flock:
    """An exclusive, non-blocking flock on ``path``: ``acquire`` raises TimeoutError if another process holds it."""

    def __init__(self, path: Path):
        self.path, self.fd = path, None

    def acquire(self) -> None:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise TimeoutError(str(self.path)) from None
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)  # closing the descriptor drops the flock


def _file_lock(path: Path):
    if os.name == "posix":
        return _Flock(path)
    import filelock

    return filelock.FileLock(str(path), timeout=0)


def read_states(con: duckdb.DuckDBPyConnection) -> dict[str, NodeState]:
    has = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = 'nodes'", [SCHEMA]
    ).fetchone()[0]
    if not has:
        return {}
    rows = con.execute(
        f"SELECT name, kind, fingerprint, data_version, inputs, rows, built_at, seconds, extra FROM {SCHEMA}.nodes"
    ).fetchall()
    return {
        r[0]: NodeState(r[0], r[1], r[2], r[3], json.loads(r[4] or "{}"), r[5], r[6], r[7], json.loads(r[8] or "{}"))
        for r in rows
    }


def relations(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    rows = con.execute(
        "SELECT table_name, 'table' FROM duckdb_tables() WHERE schema_name = 'main' AND NOT temporary "
        "UNION ALL SELECT view_name, 'view' FROM duckdb_views() WHERE schema_name = 'main' AND NOT internal "
        "AND NOT temporary"
    ).fetchall()
    return {name.lower(): kind for name, kind in rows}


_UPDATE_STATE = (f"UPDATE {SCHEMA}.nodes SET kind = ?, fingerprint = ?, data_version = ?, inputs = ?, rows = ?, "
                 "built_at = ?, seconds = ?, extra = ? WHERE name = ?")


def write_state(con: duckdb.DuckDBPyConnection, st: NodeState) -> None:
    """The node's state row (an UPDATE, else an INSERT: ~2-5 ms where DuckDB's INSERT OR REPLACE takes ~8)."""
    values = [st.kind, st.fingerprint, st.data_version, json.dumps(st.inputs, sort_keys=True), st.rows,
              st.built_at, st.seconds, json.dumps(st.extra, sort_keys=True, default=str)]
    if not con.execute(_UPDATE_STATE, [*values, st.name]).fetchall()[0][0]:
        con.execute(f"INSERT INTO {SCHEMA}.nodes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [st.name, *values])
    # append-only build history, in the same transaction as the state row (no command deletes from it)
    append_history(con, st.name, st.built_at, "tests failed" if st.extra.get("tests_failed") else "built", st.rows,
                   st.seconds, st.fingerprint)


def append_history(con: duckdb.DuckDBPyConnection, node: str, finished_at, status: str, rows: int | None,
                   seconds: float | None, fingerprint: str | None, message: str | None = None) -> None:
    """One row of the append-only build history (no command deletes from it)."""
    con.execute(f"INSERT INTO {SCHEMA}.node_history (node, finished_at, status, rows, seconds, fingerprint, "
                "message) VALUES (?, ?, ?, ?, ?, ?, ?)", [node, finished_at, status, rows, seconds, fingerprint,
                                                          message])


def _connect(path: Path, display: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    """duckdb.connect with its failures as one line: DatabaseBusyError, CorruptDatabaseError or KtoBuildError."""
    global OPENS
    OPENS += 1
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise DatabaseBusyError(display, str(exc)) from None
        if not path.exists() or "does not exist" in str(exc) or "ermission" in str(exc):
            raise KtoBuildError(f"cannot open {display}: {str(exc).splitlines()[0]}") from None
        raise _damaged(display, exc) from None
    except (duckdb.SerializationException, duckdb.InternalException, duckdb.InvalidInputException,
            duckdb.CatalogException) as exc:
        raise _damaged(display, exc) from None


def _damaged(display: str, exc: BaseException) -> KtoBuildError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].removeprefix("IO Error: ")[:200]
    return CorruptDatabaseError(f"{display} is damaged or not a DuckDB database: {first}; kto-build did not "
                                "modify it", hint="restore it from a backup, or move it away and run again to "
                                                  "rebuild, losing the generations and annotations it held")


def open_reader(path: str | Path, display: str | None = None, timeout: float = 600.0,
                on_wait=None) -> duckdb.DuckDBPyConnection:
    """A read-only connection, waiting for a run to release the file (at its next node boundary).

    While it waits, a ``<db>.readers/<pid>`` file asks the run to let it in. After one second it says once
    "waiting for the run to release the database" (through ``on_wait``, default: stderr); after
    ``timeout`` seconds it fails with one line naming the holder.
    """
    path = Path(path)
    display = display or str(path)
    started = time.monotonic()
    said, flag = False, None
    try:
        while True:
            try:
                return _connect(path, display, read_only=True)
            except DatabaseBusyError:
                if flag is None:
                    flag = path.with_name(path.name + ".readers") / str(os.getpid())
                    with contextlib.suppress(OSError):
                        flag.parent.mkdir(exist_ok=True)
                        flag.touch()
                waited = time.monotonic() - started
                if waited >= 1.0 and not said:
                    said = True
                    (on_wait or _say_waiting)(f"waiting for the run to release the database {display}")
                if waited > timeout:
                    raise
                time.sleep(0.01)
    finally:
        if flag is not None:
            with contextlib.suppress(OSError):
                flag.unlink()


def _say_waiting(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
