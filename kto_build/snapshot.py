"""What a run read from the database, kept beside it: ``<db>.snapshot.json``, so a no-op run opens no DuckDB.

A new DuckDB instance costs ~50 ms of CPU even for ':memory:' (its catalog set-up), a third of the CLI's
start-up budget. The run decides what to rebuild from three things it reads in the file: the node state rows,
the relations in schema main, and the few values a node's ``stale_reason`` reads there (``Node.db_facts``:
an annotation's log version). Everything else the decision depends on is read as before on every run: the
project files (fingerprints: SQL, YAML, vars, target), input files (sources' content hash), export files,
``--full-refresh``, ``--offline``, ``--select``.

The snapshot is a copy of those three things, valid only while the database file is byte-for-byte the one
it describes: its (st_size, st_mtime_ns, st_ino) and DuckDB's file headers must match and there must be no
``.wal`` beside it. Any
write by anyone (the annotation server, a ``duckdb`` shell, another kto-build command) changes the stat or
leaves a WAL, and the run then reads the database as before. It is written by a run after its last write,
from a read-only connection between two stats of the file that must agree (so a write by another process
in between is never recorded as this content).
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from pathlib import Path

from . import __version__
from .state import NodeState

FORMAT = 2
#: DuckDB's main header and its two database headers (4 KiB each) open the file
HEADERS = 3 * 4096
_FIELDS = ("name", "kind", "fingerprint", "data_version", "inputs", "rows", "built_at", "seconds", "extra")


def snapshot_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".snapshot.json")


def file_key(db_path: Path) -> list | None:
    """(size, mtime_ns, inode, hash of DuckDB's headers) of the database file; None if it is missing or has
    a write-ahead log. DuckDB rewrites a header (with its checkpoint iteration) at every checkpoint, and with
    no WAL every committed write has been checkpointed: so the headers tell a changed file even where the
    file system's mtime is coarse and the size did not change."""
    try:
        st = os.stat(db_path)
        with open(db_path, "rb") as fh:
            head = fh.read(HEADERS)
    except OSError:
        return None
    if os.path.exists(str(db_path) + ".wal"):
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino, hashlib.sha256(head).hexdigest()[:32]]


def _state_dict(st: NodeState) -> dict:
    d = {f: getattr(st, f) for f in _FIELDS}
    d["built_at"] = st.built_at.isoformat() if st.built_at is not None else None
    return d


def _state(d: dict) -> NodeState:
    built = d.get("built_at")
    return NodeState(**{**d, "built_at": datetime.fromisoformat(built) if built else None})


def load(db_path: Path) -> tuple[dict[str, NodeState], dict[str, str], dict[str, dict]] | None:
    """(states, relations, facts) if a snapshot describes the database file as it is now, else None."""
    key = file_key(db_path)
    if key is None:
        return None
    try:
        data = json.loads(snapshot_path(db_path).read_text(encoding="utf-8"))
        if data.get("version") != f"{FORMAT}/{__version__}" or data.get("key") != key:
            return None
        states = {name: _state(d) for name, d in data["states"].items()}
        return states, dict(data["relations"]), dict(data["facts"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def save(db, nodes: dict) -> bool:
    """Read states, relations and every node's ``db_facts`` through a read-only connection and write the
    snapshot, if the file's stat is the same before and after the read (else remove any old one)."""
    path = snapshot_path(db.path)
    before = file_key(db.path)
    written = False
    read = _read(db, nodes) if before is not None else None
    if read is not None:
        states, rels, facts = read
        if file_key(db.path) == before:
            data = {"version": f"{FORMAT}/{__version__}", "key": before, "relations": rels, "facts": facts,
                    "states": {name: _state_dict(st) for name, st in states.items()}}
            tmp = path.with_name(f".{path.name}.tmp")
            try:
                tmp.write_text(json.dumps(data, default=str), encoding="utf-8")
                tmp.replace(path)
                written = True
            except OSError:
                pass  # a read-only target/ still works, just without the snapshot
    if not written:
        try:
            path.unlink()
        except OSError:
            pass
    return written


def _read(db, nodes: dict):
    """States, relations and facts through a read-only connection; None (no snapshot) if the file is busy
    (never waits: the run is over) or cannot be read."""
    import duckdb

    from .errors import KtoBuildError
    from .state import _connect, read_states, relations

    try:
        con = _connect(db.path, db.display, read_only=True)
    except KtoBuildError:
        return None
    try:
        return read_states(con), relations(con), {name: node.db_facts(con) for name, node in nodes.items()}
    except duckdb.Error:
        return None
    finally:
        con.close()
