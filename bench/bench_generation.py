"""Benchmark generation: kto-build's generator vs a plain distilabel Pipeline, same server, same prompts.

    .venv/bin/python -m bench.bench_generation [--prompts 2000] [--latency 0.05] [--concurrency 16 32]

A local OpenAI-compatible server (tests/generation/llm_server.py, its own
process, 127.0.0.1) answers every request after --latency seconds. Both sides
call it through distilabel's OpenAILLM:

* kto-build: `Project.run()` on a temp project (prompts -> generator), one
  row per prompt, bounded concurrency C, batches committed to DuckDB. The
  figure is the generation phase's calls/s as a fraction of the ideal
  C / latency (target >= 0.9), plus the whole run's wall time (imports,
  model setup, commits, table build included).
* distilabel: LoadDataFromDicts + TextGeneration with the same OpenAILLM and
  input_batch_size = C (distilabel gathers one batch at a time), wall time of
  `pipeline.run(use_cache=False)`.
* a no-op rerun (nothing new): in-process and as the `kto-build run` CLI.

Writes bench/results/generation.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PY = sys.executable
KTO = str(Path(sys.executable).parent / "kto-build")
KEY_ENV = "KTO_BENCH_KEY"
SYSTEM = "You write haiku."


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Server:
    """tests/generation/llm_server.py in its own process (so it does not share the client's GIL)."""

    def __init__(self, latency: float):
        self.proc = subprocess.Popen([PY, str(REPO / "tests" / "generation" / "llm_server.py"), "--port", "0",
                                      "--latency", str(latency)], stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()

    def stats(self) -> dict:
        return json.loads(urllib.request.urlopen(self.url.replace("/v1", "/stats"), timeout=10).read())

    def reset(self) -> None:
        req = urllib.request.Request(self.url.replace("/v1", "/reset"), data=b"{}", method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def prompts(n: int) -> list[str]:
    return [f"Write a haiku about benchmark topic number {i}." for i in range(n)]


def make_project(root: Path, texts: list[str], url: str, concurrency: int) -> None:
    (root / "data").mkdir(parents=True)
    (root / "project.yml").write_text("name: bench_generation\n")
    with open(root / "data" / "prompts.jsonl", "w") as fh:
        for i, t in enumerate(texts):
            fh.write(json.dumps({"id": f"p{i}", "instructions": t}) + "\n")
    (root / "sources.yml").write_text(f"""prompts:
  raw: {{path: data/prompts.jsonl, text: instructions, id: id}}
generators:
  gens:
    prompts: raw
    system_prompt: {SYSTEM}
    batch_size: 200
    models:
      - name: srv
        llm: OpenAILLM
        params: {{model: test-model, base_url: "{url}"}}
        api_key_env: {KEY_ENV}
        concurrency: {concurrency}
        generation: {{temperature: 0.7, max_new_tokens: 32}}
""")


def bench_kto(server: Server, texts: list[str], concurrency: int, latency: float) -> dict:
    from kto_build.project import Project

    root = Path(tempfile.mkdtemp(prefix="kto-bench-gen-"))
    try:
        make_project(root, texts, server.url, concurrency)
        server.reset()
        load = os.getloadavg()
        t = time.perf_counter()
        rr = Project.load(root).run()
        wall = time.perf_counter() - t
        assert rr.ok, rr.nodes
        node = rr.node("gens")
        calls = node["extra"]["calls"]
        # the generation phase's own clock, as the node reports it: "... N calls in X.Ys (R/s)"
        gen_seconds = float(node["message"].split(" calls in ")[1].split("s")[0])
        requests = server.stats()["requests"]
        server.reset()
        t = time.perf_counter()
        rr2 = Project.load(root).run()
        noop_api = time.perf_counter() - t
        assert all(n["status"] == "skipped" for n in rr2.nodes)
        t = time.perf_counter()
        subprocess.run([KTO, "--project-dir", str(root), "run"], check=True, capture_output=True)
        noop_cli = time.perf_counter() - t
        assert server.stats()["requests"] == 0
        ideal = concurrency / latency
        return {"concurrency": concurrency, "calls": calls, "requests": requests,
                "generation_seconds": gen_seconds, "run_wall_seconds": round(wall, 3),
                "calls_per_second": round(calls / gen_seconds, 1), "ideal_calls_per_second": round(ideal, 1),
                "fraction_of_ideal": round(calls / gen_seconds / ideal, 3),
                "fraction_of_ideal_whole_run": round(calls / wall / ideal, 3),
                "noop_rerun_seconds_api": round(noop_api, 4), "noop_rerun_seconds_cli": round(noop_cli, 3),
                "noop_rerun_requests": 0, "loadavg_at_start": [round(x, 2) for x in load]}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def single_call_seconds(server: Server, n: int = 30) -> float:
    """One request at a time through the same distilabel OpenAILLM: the per-call round trip."""
    import asyncio

    from kto_build.adapters import distilabel_llm as dl

    llm = dl.build_llm(dl.load_llm_class("OpenAILLM"), {"model": "test-model", "base_url": server.url}, "bench-key")
    llm.load()
    chat = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Write a haiku about the bench."}]
    kwargs = {"temperature": 0.7, "max_new_tokens": 32}

    async def go() -> float:
        for _ in range(3):
            await dl.agenerate_one(llm, chat, kwargs)
        t = time.perf_counter()
        for _ in range(n):
            await dl.agenerate_one(llm, chat, kwargs)
        seconds = (time.perf_counter() - t) / n
        await dl.aclose(llm)  # in this loop: left to the garbage collector it closes from a later run's loop
        return seconds

    return asyncio.run(go())


def bench_distilabel(server: Server, texts: list[str], concurrency: int, latency: float) -> dict:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    # distilabel logs every HTTP request at INFO with this openai client (its logger is not in distilabel's
    # silenced list); printing 2,000 log lines would slow distilabel down, so give it the same quiet as kto-build
    os.environ.setdefault("DISTILABEL_LOG_LEVEL", "WARNING")
    from distilabel.models.llms import OpenAILLM
    from distilabel.pipeline import Pipeline
    from distilabel.steps import LoadDataFromDicts
    from distilabel.steps.tasks import TextGeneration

    logging.getLogger("distilabel").setLevel(logging.ERROR)
    cache = Path(tempfile.mkdtemp(prefix="distilabel-bench-"))
    try:
        with Pipeline(name="bench-generation", cache_dir=cache) as pipe:
            load = LoadDataFromDicts(data=[{"instruction": t} for t in texts], batch_size=max(concurrency, 50))
            gen = TextGeneration(llm=OpenAILLM(model="test-model", base_url=server.url, api_key="bench-key",
                                               max_retries=0, generation_kwargs={"temperature": 0.7,
                                                                                 "max_new_tokens": 32}),
                                 system_prompt=SYSTEM, input_batch_size=concurrency)
            load >> gen
        server.reset()
        t = time.perf_counter()
        distiset = pipe.run(use_cache=False)
        wall = time.perf_counter() - t
        rows = len(distiset["default"]["train"])
        requests = server.stats()["requests"]
        ideal = concurrency / latency
        return {"concurrency": concurrency, "rows": rows, "requests": requests, "run_wall_seconds": round(wall, 3),
                "calls_per_second": round(rows / wall, 1), "fraction_of_ideal_whole_run": round(rows / wall / ideal, 3)}
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=2000)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--skip-distilabel", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "generation.json"))
    args = ap.parse_args()
    os.environ[KEY_ENV] = "bench-key"
    texts = prompts(args.prompts)
    server = Server(args.latency)
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    results = {"machine": machine,
               "prompts": args.prompts, "latency_seconds": args.latency, "target_fraction_of_ideal": 0.9,
               "kto_build": [], "distilabel_pipeline": []}
    try:
        one = single_call_seconds(server)
        results["single_call_ms"] = round(one * 1000, 2)
        log(f"one call at a time: {one * 1000:.1f} ms (server latency {args.latency * 1000:.0f} ms)")
        for c in args.concurrency:
            log(f"kto-build, concurrency {c}")
            k = bench_kto(server, texts, c, args.latency)
            k["fraction_of_measured_ideal"] = round(k["calls_per_second"] / (c / one), 3)
            results["kto_build"].append(k)
            log(json.dumps(results["kto_build"][-1]))
            if not args.skip_distilabel:
                log(f"distilabel Pipeline, input_batch_size {c}")
                results["distilabel_pipeline"].append(bench_distilabel(server, texts, c, args.latency))
                log(json.dumps(results["distilabel_pipeline"][-1]))
    finally:
        server.close()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{args.prompts} prompts, server latency {args.latency * 1000:.0f} ms, {os.cpu_count()} cores\n")
    print(f"one call at a time through distilabel's OpenAILLM: {results['single_call_ms']:.1f} ms\n")
    print("| concurrency | ideal calls/s | kto-build calls/s (generation) | fraction of ideal "
          "| fraction of C / measured call time | kto-build whole run "
          "| distilabel Pipeline whole run | kto-build / distilabel (whole run) | no-op rerun (API / CLI) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, k in enumerate(results["kto_build"]):
        d = results["distilabel_pipeline"][i] if i < len(results["distilabel_pipeline"]) else None
        dl = f"{d['run_wall_seconds']:.2f} s ({d['calls_per_second']:.0f}/s)" if d else "-"
        ratio = f"{d['run_wall_seconds'] / k['run_wall_seconds']:.2f}x faster" if d else "-"
        print(f"| {k['concurrency']} | {k['ideal_calls_per_second']:.0f} | {k['calls_per_second']:.0f} | "
              f"{k['fraction_of_ideal']:.2f} | {k['fraction_of_measured_ideal']:.2f} | "
              f"{k['run_wall_seconds']:.2f} s | {dl} | {ratio} | "
              f"{k['noop_rerun_seconds_api'] * 1000:.0f} ms / {k['noop_rerun_seconds_cli'] * 1000:.0f} ms |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
