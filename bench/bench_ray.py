"""Benchmark the Ray adapter (kto_build/adapters/ray_calls.py) on a real 2-node loopback cluster.

    .venv/bin/python bench/bench_ray.py [--gemma-prompts 16] [--server-prompts 2000] [--latency 0.1]

1. Local model (the example's Gemma 3 270M through LlamaCppCompletionLLM, the
   example's params and generation kwargs): output tokens/s of one process
   (llama.cpp's default threads, and n_threads=2) vs 2 Ray actors, one per
   node (num_cpus=1 each). Model loading is outside the timed part on both
   sides (both load once), reported separately.
2. The OpenAI-compatible test server in its own process with --latency:
   calls/s as a fraction of the ideal concurrency/latency for one process
   (asyncio, concurrency 32) and for Ray with 2 and 4 actors at the same total
   concurrency 32.

Also the cluster's start time (2 nodes alive). Writes bench/results/ray.json.
The machine has 2 cores shared with other work: ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

from kto_build.adapters import distilabel_llm as dl  # noqa: E402
from scripts.ray_cluster import HEAD_RESOURCE, WORKER_RESOURCE, LoopbackCluster  # noqa: E402

BOTH = [{HEAD_RESOURCE: 1}, {WORKER_RESOURCE: 1}]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def gemma_spec() -> dict:
    """The example project's dev model entry (sources.yml)."""
    src = yaml.safe_load((REPO / "sources.yml").read_text())
    for gen in src["generators"].values():
        for m in gen["models"]:
            if m["llm"] == "LlamaCppCompletionLLM":
                return {"llm": m["llm"], "params": m.get("params") or {}, "generation": m.get("generation") or {},
                        "retries": 0}
    raise SystemExit("sources.yml has no LlamaCppCompletionLLM model")


def topics(n: int) -> list[dict]:
    words = ["autumn", "rain", "a lighthouse", "snow", "a cat", "the city", "a river", "morning", "old trees"]
    return [{"key": f"g{i}", "input": [{"role": "user", "content": f"Write a haiku about {words[i % len(words)]} "
                                                                    f"(number {i})."}]} for i in range(n)]


def one_process(spec: dict, reqs: list[dict], concurrency: int, api_key: str | None = None, **params) -> dict:
    t0 = time.monotonic()
    llm = dl.build_llm(dl.load_llm_class(spec["llm"]), {**spec["params"], **params}, api_key)
    llm.load()
    load_s = time.monotonic() - t0

    async def go():
        sem = asyncio.Semaphore(concurrency)

        async def one(r):
            async with sem:
                return await dl.agenerate_one(llm, r["input"], spec["generation"])

        return await asyncio.gather(*(one(r) for r in reqs))

    t0 = time.monotonic()
    out = asyncio.run(go())
    secs = time.monotonic() - t0
    llm.unload()
    return {"seconds": round(secs, 3), "load_seconds": round(load_s, 2), "calls": len(out),
            "output_tokens": sum(o[2] or 0 for o in out)}


def on_ray(cluster, spec: dict, reqs: list[dict], actors: int, resources, shard_size: int,
           api_key: str | None = None) -> dict:
    from kto_build.adapters.ray_calls import RayExecutor

    with RayExecutor(address=cluster.address, node_ip=cluster.ip, actors=actors, num_cpus=1,
                     resources=resources, shard_size=shard_size) as ex:
        t0 = time.monotonic()
        infos = ex.start(spec, api_key)
        load_s = time.monotonic() - t0
        t0 = time.monotonic()
        out = list(ex.run(reqs))
        secs = time.monotonic() - t0
    assert len(out) == len(reqs) and all(r["status"] == "ok" for r in out), out[:3]
    return {"seconds": round(secs, 3), "load_seconds": round(load_s, 2), "calls": len(out),
            "output_tokens": sum(r["output_tokens"] or 0 for r in out),
            "workers": sorted({r["worker"] for r in out}), "nodes": len({i["node_id"] for i in infos})}


def bench_gemma(cluster, n: int) -> dict:
    spec, reqs = gemma_spec(), topics(n)
    res = {}
    log("gemma: one process, llama.cpp default threads")
    res["one_process"] = one_process(spec, reqs, 1)
    log("gemma: one process, n_threads=2")
    res["one_process_2_threads"] = one_process(spec, reqs, 1, n_threads=2)
    log("gemma: 2 Ray actors (one per node)")
    res["ray_2_actors"] = on_ray(cluster, spec, reqs, 2, BOTH, shard_size=2)
    for v in res.values():
        v["tokens_per_second"] = round(v["output_tokens"] / v["seconds"], 1)
    base = res["one_process"]["tokens_per_second"]
    res["speedup_2_actors_vs_one_process"] = round(res["ray_2_actors"]["tokens_per_second"] / base, 2)
    res["speedup_2_actors_vs_one_process_2_threads"] = round(
        res["ray_2_actors"]["tokens_per_second"] / res["one_process_2_threads"]["tokens_per_second"], 2)
    res["target"] = 1.6
    return res


def bench_server(cluster, n: int, latency: float, concurrency: int) -> dict:
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "generation" / "llm_server.py"), "--port", "0",
                             "--latency", str(latency)], stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        spec = {"llm": "OpenAILLM", "params": {"model": "test-model", "base_url": url},
                "generation": {"temperature": 0.7, "max_new_tokens": 32}, "retries": 0}
        reqs = [{"key": f"s{i}", "input": [{"role": "user", "content": f"haiku number {i}"}]} for i in range(n)]
        ideal = concurrency / latency
        res = {"latency_seconds": latency, "prompts": n, "total_concurrency": concurrency,
               "ideal_calls_per_second": ideal}
        log(f"server: one process, concurrency {concurrency}")
        res["one_process"] = one_process(spec, reqs, concurrency, api_key="test-key")
        for actors in (2, 4):
            log(f"server: {actors} Ray actors x concurrency {concurrency // actors}")
            sp = {**spec, "concurrency": concurrency // actors}
            res[f"ray_{actors}_actors"] = on_ray(cluster, sp, reqs, actors, BOTH, shard_size=concurrency // actors,
                                              api_key="test-key")
        for k in ("one_process", "ray_2_actors", "ray_4_actors"):
            v = res[k]
            v["calls_per_second"] = round(v["calls"] / v["seconds"], 1)
            v["fraction_of_ideal"] = round(v["calls_per_second"] / ideal, 3)
        res["target_fraction_of_ideal"] = 0.9
        return res
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gemma-prompts", type=int, default=16)
    ap.add_argument("--server-prompts", type=int, default=2000)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--skip-gemma", action="store_true")
    args = ap.parse_args()
    result = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}}
    with tempfile.TemporaryDirectory() as tmp, LoopbackCluster(Path(tmp), head_cpus=2, worker_cpus=2) as cluster:
        result["cluster_start_seconds"] = round(cluster.start_seconds, 1)
        log(f"cluster up in {cluster.start_seconds:.1f} s")
        if not args.skip_gemma:
            result["gemma"] = bench_gemma(cluster, args.gemma_prompts)
        result["server"] = bench_server(cluster, args.server_prompts, args.latency, args.concurrency)
    result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out = HERE / "results" / "ray.json"
    if args.skip_gemma and out.exists():  # keep the last local-model figures
        old = json.loads(out.read_text())
        if "gemma" in old:
            result["gemma"] = old["gemma"]
            result["machine"]["gemma_from_earlier_run"] = True
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
