"""Can a Ray actor be placed? Pure logic over ``ray.nodes()``-shaped dicts (no ray import).

Ray keeps an actor it cannot place pending forever. ``await_placement`` gives a cluster ``wait`` seconds to
get a node that can hold every actor (an autoscaler may add one: a GPU pool scaled to zero is normal) and
then ends the wait with one line: what an actor asks for and what each alive node has."""

from __future__ import annotations

import time
from collections.abc import Callable

#: seconds a cluster gets to bring up a node that can hold an actor none of its nodes can hold now
PLACEMENT_WAIT = 60.0


class UnplaceableError(Exception):
    """No alive node can hold an actor, after the wait (one line, meant for the user)."""


def request_of(options: dict) -> dict[str, float]:
    """The resources of an actor's ``.options(...)``: CPU, GPU and custom resources, zero amounts dropped."""
    req = {"CPU": float(options.get("num_cpus") or 0), "GPU": float(options.get("num_gpus") or 0),
           **{str(k): float(v) for k, v in (options.get("resources") or {}).items()}}
    return {k: v for k, v in req.items() if v > 0}


def unplaceable(requests: list[dict[str, float]], nodes: list[dict]) -> dict[str, float] | None:
    """The first request that no alive node's total resources can hold, or None."""
    alive = [n.get("Resources") or {} for n in nodes if n.get("Alive")]
    for req in requests:
        if not any(all(have.get(k, 0.0) >= v for k, v in req.items()) for have in alive):
            return req
    return None


def message(req: dict[str, float], nodes: list[dict], address: str) -> str:
    have = "; ".join(", ".join(f"{k} {v:g}" for k, v in sorted((n.get("Resources") or {}).items())
                               if not k.startswith(("node:", "memory", "object_store_memory")))
                     for n in nodes if n.get("Alive")) or "no alive node"
    want = ", ".join(f"{k} {v:g}" for k, v in sorted(req.items()))
    return f"no node of the Ray cluster at {address} has what an actor asks for ({want}); its nodes have: {have}"


def await_placement(requests: list[dict[str, float]], get_nodes: Callable[[], list[dict]], address: str,
                    wait: float | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
    """Return once every request fits some alive node; raise ``UnplaceableError`` after ``wait`` seconds if not.
    A cluster whose nodes cannot be listed (``get_nodes`` fails) is not checked: the actors' own start
    timeout still ends the wait."""
    wait = PLACEMENT_WAIT if wait is None else wait
    deadline = time.monotonic() + wait
    while True:
        try:
            nodes = get_nodes()
        except Exception:  # e.g. a Ray Client that cannot list nodes
            return
        bad = unplaceable(requests, nodes)
        if bad is None:
            return
        if time.monotonic() >= deadline:
            raise UnplaceableError(message(bad, nodes, address) + f" (waited {wait:.0f} s for one)")
        sleep(min(1.0, max(0.0, deadline - time.monotonic())))
