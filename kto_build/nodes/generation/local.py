"""The in-process executor: an asyncio pool over distilabel LLMs, bounded per model.

``start`` loads each model's LLM once (through ``adapters.distilabel_llm``,
imported there: ~2 s); ``run`` gives each model ``concurrency`` workers (8 for
async LLMs, 1 for sync ones unless the model says) that take that model's
requests in order and retry transient failures with exponential backoff and
jitter (honouring Retry-After). A worker hands its result to the driver and
waits until the driver has counted it, so a model the driver stops gets no
further call from that worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...errors import did_you_mean
from .calls import CallRequest, CallResult, CallSetupError, Gate
from .settings import KNOWN_LLMS

if TYPE_CHECKING:
    from .settings import ModelEntry

_DONE = object()


@dataclass(frozen=True)
class Backoff:
    """Seconds before retry n: base * 2**(n-1), at most ``most``, times a jitter in [0.5, 1)."""

    base: float = 1.0
    most: float = 30.0

    def delay(self, tries: int, retry_after: float | None = None) -> float:
        delay = min(self.most, self.base * 2 ** (tries - 1)) * (0.5 + random.random() / 2)
        if retry_after is not None:
            delay = min(max(delay, retry_after), self.most)
        return delay


class LocalExecutor:
    """Calls in this process. ``worker`` is "host:pid"."""

    def __init__(self, backoff: Backoff | None = None):
        self.backoff = backoff or Backoff()
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.llms: dict[str, Any] = {}
        self.dl = None

    # ------------------------------------------------------------ loading
    def start(self, models: list[ModelEntry], api_keys: dict[str, str]) -> None:
        from ...adapters import distilabel_llm as dl  # ~2 s: only once there is work and the keys are there

        self.dl = dl
        for m in models:
            self.llms[m.name] = self._load(m, api_keys.get(m.name))

    def _load(self, m: ModelEntry, api_key: str | None):
        dl = self.dl
        try:
            cls = dl.load_llm_class(m.llm)
        except LookupError as exc:
            raise CallSetupError(str(exc), m, "llm", hint=did_you_mean(m.llm.rsplit(".", 1)[-1], KNOWN_LLMS)) from None
        try:
            llm = dl.build_llm(cls, m.params, api_key, m.timeout)
        except Exception as exc:
            raise CallSetupError(f"cannot configure {m.llm} for model '{m.name}': {dl.first_error_line(exc)}",
                                 m, "params") from None
        names, varkw = dl.generation_parameters(llm)
        for k in m.generation:
            if k not in names and not varkw:
                raise CallSetupError(f"{m.llm} has no generation setting '{k}'", m, "generation",
                                     hint=did_you_mean(k, names) or "known: " + ", ".join(sorted(names)))
        try:
            llm.load()  # once per run (llama.cpp loads the model file here)
        except Exception as exc:
            raise CallSetupError(f"cannot load {m.llm} for model '{m.name}': {dl.first_error_line(exc)}",
                                 m, "llm") from None
        return llm

    def close(self) -> None:
        for llm in self.llms.values():
            with contextlib.suppress(Exception):
                llm.unload()
        self.llms.clear()

    # ------------------------------------------------------------ calling
    async def run(self, requests: list[CallRequest], gate: Gate) -> AsyncIterator[CallResult]:
        by_model: dict[str, list[CallRequest]] = {}
        for r in requests:
            by_model.setdefault(r.model.name, []).append(r)
        out: asyncio.Queue = asyncio.Queue()
        workers = []
        for name, items in by_model.items():
            llm = self.llms[name]
            conc = items[0].model.concurrency or (8 if self.dl.is_async(llm) else 1)
            queue = list(reversed(items))  # pop() from the end keeps request order
            workers += [asyncio.create_task(self._worker(queue, llm, gate, out)) for _ in range(conc)]
        finisher = asyncio.create_task(self._finish(workers, out))
        try:
            while (item := await out.get()) is not _DONE:
                result, counted = item
                yield result  # the driver counts and stores it before asking for the next one
                counted.set_result(None)
            await finisher  # a worker's unexpected error surfaces here
        finally:
            for t in [*workers, finisher]:
                t.cancel()
            await asyncio.gather(*workers, finisher, return_exceptions=True)
            for llm in self.llms.values():  # in this loop, not when the garbage collector finds them later
                await self.dl.aclose(llm)

    @staticmethod
    async def _finish(workers: list[asyncio.Task], out: asyncio.Queue) -> None:
        try:
            await asyncio.gather(*workers)
        finally:
            out.put_nowait(_DONE)

    async def _worker(self, queue: list[CallRequest], llm, gate: Gate, out: asyncio.Queue) -> None:
        while queue:
            if not await gate.wait(queue[-1].model) or not queue:
                return
            request = queue.pop()
            gate.started(request)
            result = await self.call(request, llm)
            counted = asyncio.get_running_loop().create_future()
            out.put_nowait((result, counted))
            await counted

    async def call(self, request: CallRequest, llm) -> CallResult:
        """One request, with retries: the result records the last error and the number of attempts."""
        m, dl = request.model, self.dl
        kwargs = request.kwargs()
        tries = 0
        while True:
            tries += 1
            t0 = time.monotonic()
            try:
                text, tin, tout, raw = await dl.agenerate_full(llm, request.input, kwargs, m.timeout)
                return CallResult(request.key, "ok", text, None, tin, tout, (time.monotonic() - t0) * 1000, tries,
                                  self.worker, raw)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                retryable, retry_after, message = dl.classify(exc)
                if not retryable or tries > m.retries:
                    if tries > 1:
                        message = f"{message} (after {tries} attempts)"
                    return CallResult(request.key, "failed", None, message, None, None,
                                      (time.monotonic() - t0) * 1000, tries, self.worker)
                await asyncio.sleep(self.backoff.delay(tries, retry_after))
