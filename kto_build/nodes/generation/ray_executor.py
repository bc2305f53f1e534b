"""The Ray executor: a node's LLM calls in Ray actors, the driver the only DuckDB writer.

Implements the ``calls.Executor`` protocol over ``adapters.ray_calls`` (imported
in ``start`` only, so a node with ``ray:`` and nothing to do never imports ray):

- ``start`` connects to the cluster first (an unreachable one is one line at
  the node's ``ray:`` key, before any call), then creates ``actors`` actors per
  model; each actor is a ``CallActor`` holding a ``LocalExecutor`` that loads the
  model's LLM once, so loading, checks, retries and backoff are the in-process
  code, and each result's ``worker`` is the actor's "host:pid".
- ``run`` sends shards of requests to the model's actors (``gate.wait`` before a
  shard: back-pressure and stopped models as in-process) and yields
  ``CallResult``s as shards complete; a dead actor's or node's shard goes to a
  live actor and no key is yielded twice (``ray_calls._Plan``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ...errors import KtoBuildError
from .calls import CallRequest, CallResult, CallSetupError, Gate
from .local import Backoff, LocalExecutor

if TYPE_CHECKING:
    from .settings import ModelEntry, RaySettings


class CallActor:
    """Runs in a Ray actor: one model's LLM, loaded once; answers shards of ``CallRequest``s."""

    def __init__(self, model: ModelEntry, api_key: str | None, backoff: Backoff, cpus: float | None = None):
        model = threads_for(model, cpus)
        self.local = LocalExecutor(backoff)
        self.local.start([model], {model.name: api_key} if api_key else {})
        self.llm = self.local.llms[model.name]
        self.concurrency = model.concurrency or (8 if self.local.dl.is_async(self.llm) else 1)
        self._sem: asyncio.Semaphore | None = None

    @staticmethod
    def describe(model: ModelEntry, *_) -> str:
        return f"{model.llm} for model '{model.name}'"

    def info(self) -> dict:
        return {"worker": self.local.worker, "concurrency": self.concurrency}

    async def run_shard(self, shard: list[dict]) -> list[dict]:
        if self._sem is None:  # made inside the actor's event loop
            self._sem = asyncio.Semaphore(self.concurrency)

        async def one(item: dict) -> dict:
            async with self._sem:
                result = await self.local.call(item["request"], self.llm)
            return {**dataclasses.asdict(result), "key": item["key"]}

        return list(await asyncio.gather(*(one(i) for i in shard)))


def threads_for(model: ModelEntry, cpus: float | None) -> ModelEntry:
    """In an actor, an LLM with an ``n_threads`` setting (llama.cpp) uses the CPUs Ray gave the actor unless its
    params say otherwise: llama.cpp's own default is half the host's cores for tokens and all of them for prompts,
    so two actors on one host would each spin threads on the other's cores (2 actors gave 1.0-1.4x one process
    on 2 cores instead of 1.7x). Not in the cache key (``n_threads`` is a transport param)."""
    if not cpus or "n_threads" in model.params:
        return model
    from ...adapters import distilabel_llm as dl

    try:
        cls = dl.load_llm_class(model.llm)
    except LookupError:  # LocalExecutor.start reports it
        return model
    if "n_threads" not in getattr(cls, "model_fields", {}):
        return model
    return dataclasses.replace(model, params={**model.params, "n_threads": max(1, int(cpus))})


class RayExecutor:
    """``calls.Executor`` over Ray actors (``ray:`` of a generator or judge)."""

    def __init__(self, settings: RaySettings, backoff: Backoff | None = None, in_flight: int = 2):
        self.settings, self.backoff, self.in_flight = settings, backoff or Backoff(), in_flight
        self.ex = None
        self.models: dict[str, ModelEntry] = {}

    def start(self, models: list[ModelEntry], api_keys: dict[str, str]) -> None:
        from ...adapters import ray_calls  # imports ray: only here, once a node with `ray:` has work

        s = self.settings
        shard = max(1, min((m.concurrency or 8) for m in models))
        self.ex = ray_calls.RayExecutor(address=s.address, actors=s.actors, num_cpus=s.num_cpus,
                                        num_gpus=s.num_gpus, resources=s.resources, shard_size=shard,
                                        in_flight=self.in_flight)
        try:
            self.ex.connect()
        except ray_calls.RayUnavailableError as exc:
            raise KtoBuildError(str(exc), s.path, s.line, hint="start the cluster, or set ray.address "
                                "(auto, host:port, ray://host:port, local)") from None
        # actors get the model without its YAML node (plain, picklable)
        self.models = {m.name: dataclasses.replace(m, cfg=None) for m in models}
        pools = {m.name: (CallActor, (self.models[m.name], api_keys.get(m.name), self.backoff, s.num_cpus))
                 for m in models}
        try:
            self.ex.start_pools(pools)
        except ray_calls.RayUnavailableError as exc:  # no node could hold an actor: before any call
            raise KtoBuildError(str(exc), s.path, s.line, hint="lower ray.num_cpus / num_gpus / resources, or "
                                "add a node that has them") from None
        except ray_calls.ActorStartError as exc:
            model = next(m for m in models if m.name == exc.pool)
            raise CallSetupError(f"on Ray: {exc}", model, "llm") from None

    async def run(self, requests: list[CallRequest], gate: Gate) -> AsyncIterator[CallResult]:
        by_key = {r.key: r for r in requests}
        items = [{"key": r.key, "pool": r.model.name,
                  "request": CallRequest(r.key, r.input, self.models[r.model.name], r.extra)} for r in requests]

        async def before(pool: str, shard: list[dict]) -> list[dict]:
            sent = []
            for item in shard:
                if not await gate.wait(by_key[item["key"]].model):
                    break
                gate.started(by_key[item["key"]])
                sent.append(item)
            return sent

        async for d in self.ex.arun(items, before):
            yield CallResult(**{f.name: d.get(f.name) for f in dataclasses.fields(CallResult)})

    def close(self) -> None:
        if self.ex is not None:
            self.ex.shutdown()
            self.ex = None


def executor_for(ray: RaySettings | None, backoff: Backoff) -> RayExecutor | LocalExecutor:
    """The executor of a node that calls LLMs (generator or judge): Ray actors when ``ray:`` is set, else this
    process. Either way ``ray`` itself is imported only in ``RayExecutor.start``."""
    return RayExecutor(ray, backoff) if ray else LocalExecutor(backoff)
