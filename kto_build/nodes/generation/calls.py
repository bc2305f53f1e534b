"""LLM calls for any node that pays for them (generators, judges): one driver, a pluggable executor.

- A ``CallRequest`` is one call: its cache key, the LLM input (chat messages),
  the model entry, and extra generation kwargs (``logprobs`` for a judge).
- An ``Executor`` says HOW calls run: ``start(models, api_keys)`` loads the
  LLMs (``CallSetupError`` names the model and config key at fault),
  ``run(requests, gate)`` is an async iterator of ``CallResult`` (one per
  request, failures included, retries done inside), ``close()`` unloads.
  ``LocalExecutor`` (``local.py``) is the in-process asyncio pool over
  distilabel LLMs; a Ray executor yields the same results from actors.
  Before each call an executor awaits ``gate.wait(model)`` (False: make no
  more calls for that model) and reports ``gate.started(request)``.
- A ``RowSink`` says what a result becomes (``to_row``) and how a batch is
  written (``commit(con, rows)``, inside the driver's transaction).
- ``CallDriver`` owns everything around the calls: batching and committing
  with back-pressure (rows stay in memory until committed; while a reader
  holds the database it says so once, naming the reader's pid, and retries
  with backoff), progress, failure accounting (a model stops after
  ``max_consecutive_failures``), redaction of recorded errors, and on
  interruption one last commit of what finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ...errors import KtoBuildError
from ...redact import redact
from .batcher import Batcher

if TYPE_CHECKING:
    from ..base import NodeContext, NodeResult
    from .settings import ModelEntry


@dataclass(frozen=True)
class CallRequest:
    key: str
    input: Any
    model: ModelEntry
    extra: dict | None = None

    def kwargs(self) -> dict:
        """The generation kwargs of this call: the model's, then the request's own."""
        return {**self.model.generation, **(self.extra or {})}


@dataclass
class CallResult:
    key: str
    status: str  # "ok" | "failed"
    text: str | None
    error: str | None
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float
    attempts: int
    worker: str | None
    raw: Any = None  # backend extras (e.g. logprobs)

    @classmethod
    def from_dict(cls, d: dict) -> CallResult:
        """From a Ray actor's result dict (``adapters.ray_calls``)."""
        return cls(d["key"], d["status"], d.get("text"), d.get("error"), d.get("input_tokens"),
                   d.get("output_tokens"), float(d.get("latency_ms") or 0.0), int(d.get("attempts") or 1),
                   d.get("worker"), d.get("raw"))


class RowSink(Protocol):
    def to_row(self, request: CallRequest, result: CallResult) -> Any: ...

    def commit(self, con, rows: list) -> None: ...


class Gate(Protocol):
    async def wait(self, model: ModelEntry) -> bool: ...

    def started(self, request: CallRequest) -> None: ...


class Executor(Protocol):
    def start(self, models: list[ModelEntry], api_keys: dict[str, str]) -> None: ...

    def run(self, requests: list[CallRequest], gate: Gate) -> AsyncIterator[CallResult]: ...

    def close(self) -> None: ...


class CallSetupError(Exception):
    """A model's LLM cannot be loaded or configured; ``key`` is the config key to point at."""

    def __init__(self, message: str, model: ModelEntry, key: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.model, self.key, self.hint = model, key, hint


class TooManyFailuresError(KtoBuildError):
    """The table and state are committed, but too many calls failed: the node (and the run) fails."""

    def __init__(self, message, path, line, result: NodeResult):
        super().__init__(message, path, line)
        self.result = result


@dataclass
class CallStats:
    calls: int = 0
    ok: int = 0
    failed: int = 0
    retries: int = 0
    batches: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    first_error: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class Failures:
    """Failures in a row per model; a model that reaches the limit gets no more calls."""

    limit: int
    in_a_row: dict[str, int] = field(default_factory=dict)
    stopped: set[str] = field(default_factory=set)

    def count(self, stats: CallStats, model: str, result: CallResult) -> None:
        stats.calls += 1
        stats.retries += max(0, result.attempts - 1)
        if result.status == "ok":
            stats.ok += 1
            stats.output_tokens += result.output_tokens or 0
            self.in_a_row[model] = 0
            return
        stats.failed += 1
        stats.first_error = stats.first_error or result.error
        n = self.in_a_row[model] = self.in_a_row.get(model, 0) + 1
        if n >= self.limit and model not in self.stopped:
            self.stopped.add(model)
            stats.warnings.append(f"stopped calling '{model}' after {n} failures in a row: {result.error}")


class _DriverGate:
    """What the executor sees of the driver: room in the batch buffer, stopped models, calls in flight."""

    def __init__(self, batcher: Batcher, failures: Failures, flush_task: asyncio.Task):
        self.batcher, self.failures, self.flush_task = batcher, failures, flush_task
        self.in_flight: dict[str, float] = {}  # key -> start of the call

    def closed(self, model: ModelEntry) -> bool:
        return model.name in self.failures.stopped or self.flush_task.done()

    async def wait(self, model: ModelEntry) -> bool:
        if self.closed(model):
            return False
        await self.batcher.room_for_more(self.flush_task)  # back-pressure: two batches wait for the database
        return not self.closed(model)

    def started(self, request: CallRequest) -> None:
        self.in_flight[request.key] = time.monotonic()

    def slow_note(self, now: float) -> str:
        slow = [now - t for t in self.in_flight.values() if now - t >= 5]
        return f" ({len(slow)} calls waiting, longest {max(slow):.0f}s)" if slow else ""


@dataclass
class CallDriver:
    """Runs ``requests`` through ``executor`` and commits the sink's rows in batches."""

    name: str  # the node: progress line
    ctx: NodeContext
    executor: Executor
    sink: RowSink
    batch_size: int = 100
    commit_seconds: float = 5.0
    max_consecutive_failures: int = 20
    noun: str = "generation"  # what a row is, in messages

    def run(self, requests: list[CallRequest]) -> CallStats:
        """Synchronous entry: its own event loop (a thread if one already runs, as in a notebook)."""
        return run_async(self.arun(requests))

    async def arun(self, requests: list[CallRequest]) -> CallStats:
        stats = CallStats()
        failures = Failures(self.max_consecutive_failures)
        batcher = Batcher(self.ctx, self.sink, self.batch_size, self.commit_seconds, stats, self.noun)
        by_key = {r.key: r for r in requests}
        t_start = time.monotonic()
        with self.ctx.reporter.progress(self.name, len(requests)) as bar:
            flush_task = asyncio.create_task(batcher.flusher())
            gate = _DriverGate(batcher, failures, flush_task)
            tick_task = asyncio.create_task(self._ticker(bar, gate, batcher))
            try:
                async with contextlib.aclosing(self.executor.run(requests, gate)) as results:
                    async for result in results:
                        request = by_key[result.key]
                        gate.in_flight.pop(result.key, None)
                        result.error = redact(result.error)
                        failures.count(stats, request.model.name, result)
                        batcher.add(self.sink.to_row(request, result))
                        bar.advance(1)
                stats.seconds = time.monotonic() - t_start
                await batcher.finish(flush_task)
            except BaseException:
                # Ctrl-C / cancellation / an unexpected error: keep what finished
                flush_task.cancel()
                batcher.last_chance()
                raise
            finally:
                tick_task.cancel()
        return stats

    async def _ticker(self, bar, gate: _DriverGate, batcher: Batcher) -> None:
        """The progress line names calls that wait long, and a database that is busy."""
        while True:
            await asyncio.sleep(1.0)
            bar.update(description=f"{self.name}{batcher.note or gate.slow_note(time.monotonic())}")


def run_async(coro):
    """asyncio.run, also from a notebook whose loop is already running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict = {}

    def target():
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=target, name="kto-build-calls")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
