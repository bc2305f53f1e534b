"""The one module that imports ray: LLM calls in Ray actors, one writer on the driver.

- ``LLMActor(spec, api_key)``: a Ray actor that loads one model entry's LLM ONCE (as the generation node
  does) and answers shards: ``run_shard(requests)`` takes ``[{"key": ..., "input": chat, ...}]`` and returns
  one result per request ``{"key", "status": "ok"|"failed", "text", "input_tokens", "output_tokens",
  "latency_ms", "error", "attempts", "worker": "host:pid"}``, with kto-build's retries and backoff inside.
- ``RayExecutor(address, actors, num_cpus, num_gpus)``: the driver side. ``connect()`` reaches the cluster
  (``auto``, ``host:port``, ``ray://host:port`` or ``local``) or raises ``RayUnavailableError`` with one
  line, before any call; ``start_pools`` raises it too when no node can hold an actor (``ray_resources``),
  else creates the actors and waits until each has loaded its LLM; ``run(requests)`` streams shards to them with at most
  ``in_flight`` shards per actor and yields results as shards complete. The shard of an actor that died
  (killed actor, killed node) is sent to another live actor; no key is yielded twice.

The API key is read on the driver (``api_key_env``) and handed to the actor's
constructor: never through ``runtime_env``, never logged.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import random
import re
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, NodeDiedError, RayActorError

from .ray_resources import UnplaceableError, await_placement, request_of

DIED = (RayActorError, NodeDiedError)  # what a dead actor's or node's shard raises (sent again to a live actor)
#: an `address: local` instance's node address: loopback, not 127.0.0.1 (Ray 2.60 rewrites that to the machine's
#: routable address); macOS configures only 127.0.0.1, so there Ray picks
LOCAL_IP = "127.0.0.2" if sys.platform.startswith("linux") else None
#: spec keys: llm, params, generation, timeout, retries, backoff, max_backoff, concurrency
SPEC_DEFAULTS = {"params": {}, "generation": {}, "timeout": None, "retries": 4, "backoff": 1.0,
                 "max_backoff": 30.0, "concurrency": None}


class RayUnavailableError(Exception):
    """The cluster cannot be reached (one line, meant for the user)."""


class ActorStartError(Exception):
    """An actor failed in its constructor (building or loading the LLM): one line; ``pool`` names its pool."""

    def __init__(self, message: str, pool: str = ""):
        super().__init__(message)
        self.pool = pool


class AllActorsDiedError(Exception):
    """Every actor died; the shards not answered are listed in ``keys``."""

    def __init__(self, message: str, keys: list):
        super().__init__(message)
        self.keys = keys


# ---------------------------------------------------------------- actor
class LLMActor:
    """Holds one loaded LLM; answers shards of requests."""

    def __init__(self, spec: dict, api_key: str | None = None):
        from . import distilabel_llm as dl

        self.dl = dl
        self.spec = {**SPEC_DEFAULTS, **spec}
        cls = dl.load_llm_class(self.spec["llm"])
        self.llm = dl.build_llm(cls, self.spec["params"], api_key, self.spec["timeout"])
        self.llm.load()
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.concurrency = self.spec["concurrency"] or (8 if dl.is_async(self.llm) else 1)
        self._sem: asyncio.Semaphore | None = None

    def info(self) -> dict:
        return {"worker": self.worker, "node_id": ray.get_runtime_context().get_node_id(),
                "concurrency": self.concurrency}

    async def run_shard(self, requests: list[dict]) -> list[dict]:
        if self._sem is None:  # created inside the actor's event loop
            self._sem = asyncio.Semaphore(self.concurrency)
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    async def _one(self, req: dict) -> dict:
        async with self._sem:
            return await self._attempt(req)

    async def _attempt(self, req: dict) -> dict:
        s, dl = self.spec, self.dl
        kwargs = {**s["generation"], **(req.get("generation") or {})}
        tries = 0
        while True:
            tries += 1
            t0 = time.monotonic()
            try:
                text, tin, tout = await dl.agenerate_one(self.llm, req["input"], kwargs, s["timeout"])
                return self._result(req, "ok", text, None, tin, tout, t0, tries)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                retryable, retry_after, message = dl.classify(exc)
                if not retryable or tries > s["retries"]:
                    if tries > 1:
                        message = f"{message} (after {tries} attempts)"
                    return self._result(req, "failed", None, message, None, None, t0, tries)
                delay = min(s["max_backoff"], s["backoff"] * 2 ** (tries - 1)) * (0.5 + random.random() / 2)
                if retry_after is not None:
                    delay = min(max(delay, retry_after), s["max_backoff"])
                await asyncio.sleep(delay)

    def _result(self, req, status, text, error, tin, tout, t0, tries) -> dict:
        return {"key": req["key"], "status": status, "text": text, "error": error, "input_tokens": tin,
                "output_tokens": tout, "latency_ms": round((time.monotonic() - t0) * 1000, 3), "attempts": tries,
                "worker": self.worker}

    def unload(self) -> None:
        self.llm.unload()


# ---------------------------------------------------------------- driver
def _probe(address: str, timeout: float) -> None:
    """A TCP connect to host:port (also for ray://): a clear line instead of Ray's long retry loop."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise RayUnavailableError(f"ray address '{address}' is not host:port, ray://host:port, auto or local")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise RayUnavailableError(f"cannot reach the Ray cluster at {address}: "
                                  f"{exc.strerror or type(exc).__name__}") from None


class RayExecutor:
    """Driver side: connect, create ``actors`` LLM actors, stream shards, yield results."""

    def __init__(self, address: str = "auto", actors: int = 2, num_cpus: float = 1, num_gpus: float = 0,
                 resources: dict | list[dict] | None = None, shard_size: int = 16, in_flight: int = 2,
                 node_ip: str | None = None, connect_timeout: float = 10.0, temp_dir: str | None = None):
        self.address, self.actors_wanted = address, int(actors)
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self.resources = resources
        self.shard_size, self.in_flight = max(1, int(shard_size)), max(1, int(in_flight))
        self.node_ip, self.connect_timeout, self.temp_dir = node_ip, connect_timeout, temp_dir
        self.actors: list = []
        self.pools: dict[str, list] = {}
        self.workers: dict[int, dict] = {}  # id(actor handle) -> info()
        self.resubmitted = 0
        self._connected = False

    # ------------------------------------------------------- connecting
    def connect(self) -> RayExecutor:
        kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False,
                                  "configure_logging": True, "include_dashboard": False}
        address = self.address
        if address == "local":  # an instance for this run only, bound to loopback; ray.shutdown() stops it
            kwargs.update(address="local", _node_ip_address=self.node_ip or LOCAL_IP)
            if self.temp_dir:
                kwargs["_temp_dir"] = str(self.temp_dir)
            # Ray 2.60 turns on token auth for a new local instance (token in ~/.ray/auth_token) and says so
            logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        elif address == "auto":
            if os.environ.get("RAY_ADDRESS"):
                _probe(os.environ["RAY_ADDRESS"], self.connect_timeout)
            kwargs.update(address="auto")
        else:
            _probe(address, self.connect_timeout)
            kwargs.update(address=address)
            host = address.split("://", 1)[-1].rpartition(":")[0]
            node_ip = self.node_ip or (host if host.startswith("127.") else None)
            if node_ip and not address.startswith("ray://"):
                kwargs["_node_ip_address"] = node_ip
        if address.startswith("ray://"):
            kwargs.pop("include_dashboard", None)
            kwargs.pop("configure_logging", None)
        try:
            ray.init(**kwargs)
        except Exception as exc:
            line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise RayUnavailableError(f"cannot connect to the Ray cluster at {address}: {line}") from None
        self._connected = True
        return self

    # ------------------------------------------------------- actors
    def _actor_options(self, i: int) -> dict:
        res = self.resources
        if isinstance(res, list):
            res = res[i % len(res)] if res else None
        opts = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "max_restarts": 0, "max_task_retries": 0}
        if res:
            opts["resources"] = dict(res)
        return opts

    def start(self, spec: dict, api_key: str | None = None, timeout: float = 300) -> list[dict]:
        """Create ``actors`` LLMActors for one model spec; wait until each has loaded its LLM."""
        return self.start_pools({"": (LLMActor, (spec, api_key))}, timeout)

    def start_pools(self, pools: dict[str, tuple[type, tuple]], timeout: float = 300) -> list[dict]:
        """``actors`` actors of ``cls(*args)`` per pool (a request's ``pool`` names its pool); waits until each
        constructor has returned. Returns their ``info()`` (+ ``node_id``, ``worker``, ``pool``)."""
        if not self._connected:
            self.connect()
        try:
            await_placement([request_of(self._actor_options(i)) for i in range(self.actors_wanted)], ray.nodes,
                            self.address)
        except UnplaceableError as exc:
            raise RayUnavailableError(str(exc)) from None
        self.pools = {}
        for name, (cls, args) in pools.items():
            remote = ray.remote(_located(cls))
            self.pools[name] = [remote.options(**self._actor_options(i)).remote(*args)
                                for i in range(self.actors_wanted)]
        self.actors = [a for actors in self.pools.values() for a in actors]
        infos = []
        for name, actors in self.pools.items():
            try:
                got = ray.get([a.located_info.remote() for a in actors], timeout=timeout)
            except RayActorError as exc:  # the LLM could not be built or loaded in the actor
                what = getattr(pools[name][0], "describe", None)
                what = what(*pools[name][1]) if what else (pools[name][1][0] or {}).get("llm")
                raise ActorStartError(f"a Ray actor could not load {what}: {_cause_line(exc)}", name) from None
            except GetTimeoutError:
                raise ActorStartError(f"Ray actors not ready after {timeout:.0f} s (busy cluster? `ray status`)",
                                      name) from None
            infos += [{**i, "pool": name} for i in got]
        self.workers = {id(a): info for a, info in zip(self.actors, infos, strict=True)}
        return infos

    def worker_of(self, actor) -> str:
        return self.workers[id(actor)]["worker"]

    # ------------------------------------------------------- running
    def run(self, requests: Iterable[dict]) -> Iterator[dict]:
        """Results (one per request key) as their shards complete, from any live actor of the request's pool."""
        plan = _Plan(self, requests)
        while True:
            for actor, shard in plan.ready_to_send():
                plan.sent(actor.run_shard.remote(shard), actor, shard)
            if not plan.pending:
                return
            ready, _ = ray.wait(list(plan.pending), num_returns=1)
            ref = ready[0]
            try:
                results = ray.get(ref)
            except DIED:
                plan.died(ref)
                continue
            yield from plan.done(ref, results)

    async def arun(self, requests: Iterable[dict], before=None):
        """``run`` for an asyncio caller: an async iterator of results. ``await before(pool, shard)`` runs
        before a shard is sent and returns the requests to send (``[]``: send nothing more of that pool)."""
        plan = _Plan(self, requests)
        futures: dict = {}  # asyncio future -> ref
        while True:
            for actor, shard in plan.ready_to_send():
                if before is not None:
                    shard = await before(shard[0].get("pool", ""), shard)
                    if not shard:
                        plan.close_pool(plan.pool_of(actor))
                        continue
                ref = actor.run_shard.remote(shard)
                plan.sent(ref, actor, shard)
                futures[asyncio.wrap_future(ref.future())] = ref
            if not plan.pending:
                return
            done, _ = await asyncio.wait(list(futures), return_when=asyncio.FIRST_COMPLETED)
            for fut in done:
                ref = futures.pop(fut)
                if ref not in plan.pending:  # a dead actor's other shard, already sent again
                    continue
                try:
                    results = fut.result()
                except DIED:
                    plan.died(ref)
                    continue
                for r in plan.done(ref, results):
                    yield r

    # ------------------------------------------------------- stopping
    def shutdown(self) -> None:
        for a in self.actors:
            try:
                ray.kill(a)
            except Exception:  # noqa: S112 - an already dead actor
                continue
        self.actors, self.pools = [], {}
        if self._connected:
            ray.shutdown()
            self._connected = False

    def __enter__(self) -> RayExecutor:
        return self.connect()

    def __exit__(self, *exc) -> None:
        self.shutdown()


class _Plan:
    """The shards of one ``run``: what to send to which live actor, what is in flight, what came back."""

    def __init__(self, ex: RayExecutor, requests: Iterable[dict]):
        self.ex = ex
        by_pool: dict[str, list[dict]] = {}
        for r in requests:
            pool = r.get("pool", "")
            if pool not in ex.pools:
                raise KeyError(f"no actors for pool {pool!r}")
            by_pool.setdefault(pool, []).append(r)
        size = ex.shard_size
        self.shards = {p: collections.deque(rs[i:i + size] for i in range(0, len(rs), size))
                       for p, rs in by_pool.items()}
        self.live = {p: list(actors) for p, actors in ex.pools.items()}
        self.load = {id(a): 0 for actors in ex.pools.values() for a in actors}
        self.pending: dict = {}  # ObjectRef -> (actor, shard)
        self.returned: set = set()

    def pool_of(self, actor) -> str:
        return next(p for p, actors in self.ex.pools.items() if actor in actors)

    def ready_to_send(self) -> Iterator[tuple[Any, list]]:
        for pool, queue in self.shards.items():
            for _ in range(self.ex.in_flight):  # round-robin: every actor gets a shard before any gets two
                for actor in list(self.live[pool]):
                    if queue and self.load[id(actor)] < self.ex.in_flight:
                        self.load[id(actor)] += 1  # taken now; ``sent`` records the ref (or ``close_pool`` drops it)
                        yield actor, queue.popleft()

    def sent(self, ref, actor, shard: list) -> None:
        self.pending[ref] = (actor, shard)

    def close_pool(self, pool: str) -> None:
        """Nothing more of this pool is sent (the caller stopped it)."""
        self.shards[pool].clear()
        for actor in self.ex.pools[pool]:
            self.load[id(actor)] = sum(1 for a, _ in self.pending.values() if a is actor)

    def done(self, ref, results: list[dict]) -> Iterator[dict]:
        actor, _ = self.pending.pop(ref)
        self.load[id(actor)] -= 1
        for r in results:
            if r["key"] not in self.returned:  # a re-sent shard may overlap what came back before
                self.returned.add(r["key"])
                yield r

    def died(self, ref) -> None:
        """An actor died: its shards in flight go back to the front of its pool's queue for the live actors."""
        actor, shard = self.pending.pop(ref)
        pool = self.pool_of(actor)
        if actor in self.live[pool]:
            self.live[pool].remove(actor)
        requeue = [shard]
        for r, (a, s) in list(self.pending.items()):
            if a is actor:
                del self.pending[r]
                requeue.append(s)
        for s in reversed(requeue):
            self.shards[pool].appendleft(s)
        self.ex.resubmitted += len(requeue)
        if not self.live[pool] and self.shards[pool]:
            keys = [r["key"] for s in self.shards[pool] for r in s]
            raise AllActorsDiedError(f"every Ray actor{' of ' + pool if pool else ''} died; {len(keys)} request(s) "
                                     "not answered", keys)


def _located(cls: type) -> type:
    """``cls`` with ``located_info()``: its ``info()`` plus the Ray node it runs on and ``worker`` (host:pid)."""

    class Located(cls):
        def located_info(self) -> dict:
            base = self.info() if hasattr(self, "info") else {}
            return {"worker": f"{socket.gethostname()}:{os.getpid()}", **base,
                    "node_id": ray.get_runtime_context().get_node_id()}

    Located.__name__ = Located.__qualname__ = cls.__name__
    return Located


def _cause_line(exc: BaseException) -> str:
    """The 'SomeError: message' line of the actor's constructor failure, out of Ray's long text."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    found = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception): ", ln)]
    return (found[-1] if found else (lines[-1] if lines else type(exc).__name__))[:300]


def kill_actor(actor) -> None:
    """kill -9 style end of one actor (no restart), for tests and operators."""
    ray.kill(actor, no_restart=True)


__all__ = ["ActorStartError", "AllActorsDiedError", "GetTimeoutError", "LLMActor", "RayExecutor", "RayUnavailableError",
           "kill_actor"]
