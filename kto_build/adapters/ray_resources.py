"""Can a Ray actor be placed at all? Pure logic over ``ray.nodes()`` (no ray import), so a cluster without a
node that has what an actor asks for is one clear line before any actor is made, not a wait that never ends
(Ray keeps an unplaceable actor pending forever)."""

from __future__ import annotations


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
