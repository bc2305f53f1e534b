"""Finished rows waiting for their batch commit; a row leaves memory only once committed.

Each batch is its own short write transaction (``sink.commit`` inside it).
The batches share one write connection (a new DuckDB instance costs ~50 ms of
CPU): it is closed after a commit once it has been open HOLD_SECONDS, or at
once when a reader waits for the file (``open_reader`` leaves a file in
``<db>.readers/``), so readers still get in between batches. A commit that
cannot get the file (a reader such as a duckdb shell holds it)
keeps its rows, says so in one line (naming the pid when DuckDB does), and
tries again with backoff; the driver's gate holds new calls while two batches
wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

from ...state import HOLD_SECONDS, DatabaseBusyError

if TYPE_CHECKING:
    from ..base import NodeContext
    from .calls import CallStats, RowSink


class Batcher:
    def __init__(self, ctx: NodeContext, sink: RowSink, batch_size: int, commit_seconds: float, stats: CallStats,
                 noun: str = "generation"):
        self.ctx, self.sink, self.stats, self.noun = ctx, sink, stats, noun
        self.batch_size, self.commit_seconds = batch_size, commit_seconds
        self.rows: list[Any] = []
        self.flush_now = asyncio.Event()
        self.room = asyncio.Event()
        self.done = False
        self.note = ""  # shown in the progress line while the database is busy
        self._con: contextlib.ExitStack | None = None  # the batches' shared write connection, while held
        self._held = None
        self._con_since = 0.0
        self._lock = threading.Lock()  # a commit thread and last_chance never use the connection at once

    def add(self, row: Any) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.batch_size:
            self.flush_now.set()

    async def room_for_more(self, flush_task: asyncio.Task) -> None:
        while len(self.rows) >= 2 * self.batch_size and not flush_task.done():
            self.room.clear()
            self.flush_now.set()
            await self.room.wait()

    def commit(self, rows: list, retries: float = 0.2) -> None:
        with self._lock:
            con = self._connection(retries)
            try:
                con.execute("BEGIN TRANSACTION")
                try:
                    self.sink.commit(con, rows)
                    con.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(Exception):
                        con.execute("ROLLBACK")
                    raise
            except BaseException:
                self._close()
                raise
            if self._let_go_due():
                self._close()  # readers get in between batches

    def _connection(self, retries: float):
        if self._con is None:
            stack = contextlib.ExitStack()
            self._held = stack.enter_context(self.ctx.db.connect(retries=retries))
            self._con, self._con_since = stack, time.monotonic()
        return self._held

    def _let_go_due(self) -> bool:
        """The held connection has been open HOLD_SECONDS, or a reader waits for the file."""
        return time.monotonic() - self._con_since >= HOLD_SECONDS or self.ctx.db.reader_waits()

    def _close(self) -> None:
        if self._con is not None:
            stack, self._con, self._held = self._con, None, None
            stack.close()

    def close(self) -> None:
        """Close the shared connection (the node is done with its batches)."""
        with self._lock:
            self._close()

    async def flusher(self) -> None:
        delay, waiting_since = 0.05, None
        while True:
            if not self.done and waiting_since is None:
                await self._wait_for_batch()
            self.flush_now.clear()
            if self.rows:
                n = len(self.rows)
                try:
                    await asyncio.to_thread(self.commit, self.rows[:n])
                except DatabaseBusyError as exc:
                    if waiting_since is None:
                        waiting_since = time.monotonic()
                        self._busy(n, exc)
                    await asyncio.sleep(delay)
                    delay = min(2.0, delay * 2)
                    continue
                del self.rows[:n]
                self.stats.batches += 1
                if waiting_since is not None:
                    self.ctx.reporter.info(f"database free again after {time.monotonic() - waiting_since:.1f}s: "
                                           f"{n} {self.noun}s committed")
                delay, waiting_since, self.note = 0.05, None, ""
                self.room.set()
            if self.done and not self.rows:
                return

    async def _wait_for_batch(self) -> None:
        """Until a batch is due (``flush_now``, or commit_seconds); meanwhile a held connection is let go as
        after a commit (held HOLD_SECONDS, or a reader waits), so slow calls never keep readers out."""
        deadline = time.monotonic() + self.commit_seconds
        while (step := deadline - time.monotonic()) > 0:
            try:
                await asyncio.wait_for(self.flush_now.wait(), step if self._con is None else min(step, 0.1))
                return
            except TimeoutError:
                if self._con is not None:
                    await asyncio.to_thread(self._release_if_due)

    def _release_if_due(self) -> None:
        with self._lock:
            if self._con is not None and self._let_go_due():
                self._close()

    def _busy(self, n: int, exc: DatabaseBusyError) -> None:
        line = (f"{n} finished {self.noun}{'s' if n != 1 else ''} wait for the database: {exc.holder_text()}; "
                "they stay in memory and are committed as soon as it is closed")
        self.ctx.reporter.warn(line)
        self.stats.warnings.append(line)
        self.note = f" (waiting for the database: {exc.holder_text()})"

    async def finish(self, flush_task: asyncio.Task) -> None:
        """Every call has answered: commit the rest and wait for it."""
        self.done = True
        self.flush_now.set()
        try:
            await flush_task
        finally:
            await asyncio.to_thread(self.close)

    def last_chance(self) -> None:
        """On interruption: commit what finished (waiting a few seconds for a reader), or say what is lost."""
        try:
            if self.rows:
                self.commit(list(self.rows), retries=5.0)
                self.rows.clear()
        except Exception as exc:
            self.ctx.reporter.warn(f"{len(self.rows)} finished {self.noun}s could not be stored ({exc}); "
                                   "the next run makes these calls again")
        finally:
            self.close()
