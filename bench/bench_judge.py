"""Benchmark judges: throughput against the local test server as a fraction of the ideal, and a no-op rerun.

    .venv/bin/python -m bench.bench_judge [--records 2000] [--latency 0.05] [--concurrency 16]

A local OpenAI-compatible server (tests/generation/llm_server.py, its own
process, 127.0.0.1) answers every request after --latency seconds with a
verdict and first-token log-probabilities. kto-build's judge node (records ->
annotation's question -> judge through distilabel's OpenAILLM, log-probabilities
asked for) judges every record with concurrency C. The figure is the judging
phase's calls/s as a fraction of the ideal C / latency (target >= 0.9), and of
C / (one call's measured round trip); its peers in the same script are the bare openai SDK (AsyncOpenAI and a
semaphore of C, same server, same process: judge calls/s / SDK calls/s is kto-build's own cost) and a generator
on the same server with the same number of calls and the same concurrency
(bench_generation's run), so a loaded machine shows as a ratio; then a no-op rerun (0 requests: its time,
in-process and as the CLI) and a rerun after one record changed (1 request).

Writes bench/results/judge.json and prints a markdown table. The machine is
shared: the load average is recorded beside every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.bench_generation import KEY_ENV, KTO, Server, bench_kto, log, prompts, single_call_seconds

HERE = Path(__file__).resolve().parent

REPLY = {"text": "Yes", "first": {" Yes": math.log(0.7), " No": math.log(0.3)}}


def configure(server: Server, **knobs) -> None:
    req = urllib.request.Request(server.url.replace("/v1", "/config"), data=json.dumps(knobs).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()


def write_records(root: Path, n: int, changed: int | None = None) -> None:
    with open(root / "data" / "records.jsonl", "w") as fh:
        for i in range(n):
            text = f"haiku number {i}\nwritten for the bench\n{'changed' if i == changed else 'as it was'}"
            fh.write(json.dumps({"id": f"r{i:05d}", "prompt": f"Write a haiku about topic {i}.",
                                 "completion": text}) + "\n")


def make_project(root: Path, n: int, url: str, concurrency: int) -> None:
    (root / "data").mkdir(parents=True)
    (root / "project.yml").write_text("name: bench_judge\n")
    write_records(root, n)
    (root / "sources.yml").write_text(f"""prompts:
  raw: {{path: data/records.jsonl}}
annotations:
  ratings:
    records: raw
    question: {{name: label, title: "Do you like this haiku?", labels: ["Yes", "No"]}}
    backend: local
judges:
  judge:
    records: raw
    annotation: ratings
    batch_size: 200
    models:
      - name: srv
        llm: OpenAILLM
        params: {{model: test-model, base_url: "{url}"}}
        api_key_env: {KEY_ENV}
        concurrency: {concurrency}
        generation: {{temperature: 0.0, max_new_tokens: 8}}
""")


def bench(server: Server, n: int, concurrency: int, latency: float) -> dict:
    from kto_build.project import Project

    root = Path(tempfile.mkdtemp(prefix="kto-bench-judge-"))
    try:
        make_project(root, n, server.url, concurrency)
        server.reset()
        load = os.getloadavg()
        t = time.perf_counter()
        rr = Project.load(root).run()
        wall = time.perf_counter() - t
        assert rr.ok, rr.nodes
        node = rr.node("judge")
        calls = node["extra"]["calls"]
        seconds = float(node["message"].split(" calls in ")[1].split("s")[0])  # the judging phase's own clock
        requests = server.stats()["requests"]
        import duckdb

        con = duckdb.connect(str(root / "target" / "kto_build.duckdb"), read_only=True)
        labelled, scored = con.execute("select count(label), count(score) from judge").fetchone()
        con.close()
        server.reset()
        t = time.perf_counter()
        rr2 = Project.load(root).run()
        noop_api = time.perf_counter() - t
        assert all(x["status"] == "skipped" for x in rr2.nodes), rr2.nodes
        t = time.perf_counter()
        subprocess.run([KTO, "--project-dir", str(root), "run"], check=True, capture_output=True)
        noop_cli = time.perf_counter() - t
        noop_requests = server.stats()["requests"]
        write_records(root, n, changed=7)
        assert Project.load(root).run().ok
        one_changed = server.stats()["requests"]
        ideal = concurrency / latency
        return {"concurrency": concurrency, "records": n, "calls": calls, "requests": requests,
                "labelled": labelled, "scored": scored, "judge_seconds": seconds, "run_wall_seconds": round(wall, 3),
                "calls_per_second": round(calls / seconds, 1), "ideal_calls_per_second": round(ideal, 1),
                "fraction_of_ideal": round(calls / seconds / ideal, 3),
                "noop_rerun_requests": noop_requests, "noop_rerun_seconds_api": round(noop_api, 4),
                "noop_rerun_seconds_cli": round(noop_cli, 3), "one_changed_record_requests": one_changed,
                "loadavg_at_start": [round(x, 2) for x in load],
                "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bare_sdk(server: Server, n: int, concurrency: int, latency: float, aiohttp: bool = False) -> dict:
    """The peer: the bare openai SDK (AsyncOpenAI, a semaphore of ``concurrency``) asking the same server for the
    same kind of verdict (chat, log-probabilities, max 8 tokens), in this process as kto-build's judge runs;
    ``aiohttp``: with ``http_client=openai.DefaultAioHttpClient()``."""
    import asyncio

    import openai

    async def go() -> float:
        http = {"http_client": openai.DefaultAioHttpClient()} if aiohttp else {}
        client = openai.AsyncOpenAI(base_url=server.url, api_key="bench-key", max_retries=0, **http)
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                msg = (f"Do you like this haiku?\n\nPrompt: Write a haiku about topic {i}.\n\nResponse: haiku "
                       f"number {i}\nwritten for the bench\nas it was\n\nAnswer with one of: Yes, No.")
                out = await client.chat.completions.create(
                    model="test-model", messages=[{"role": "user", "content": msg}], temperature=0.0, max_tokens=8,
                    logprobs=True, top_logprobs=10)
                assert out.choices[0].message.content

        async with client:
            t = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(n)))
            return time.perf_counter() - t

    server.reset()
    load = os.getloadavg()
    seconds = asyncio.run(go())
    assert server.stats()["requests"] == n
    return {"client": "aiohttp" if aiohttp else "httpx", "calls_per_second": round(n / seconds, 1),
            "fraction_of_ideal": round(n / seconds / (concurrency / latency), 3),
            "loadavg_at_start": [round(x, 2) for x in load]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[16])
    ap.add_argument("--aiohttp", type=int, default=0, metavar="N",
                    help="also N alternating bare-SDK runs each with httpx and with openai.DefaultAioHttpClient")
    ap.add_argument("--out", default=str(HERE / "results" / "judge.json"))
    args = ap.parse_args()
    os.environ[KEY_ENV] = "bench-key"
    server = Server(args.latency)
    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "platform": platform.platform()},
               "records": args.records, "latency_seconds": args.latency, "target_fraction_of_ideal": 0.9,
               "kto_build_judge": []}
    try:
        configure(server, replies={"Response": REPLY})
        one = single_call_seconds(server)
        results["single_call_ms"] = round(one * 1000, 2)
        log(f"one call at a time: {one * 1000:.1f} ms (server latency {args.latency * 1000:.0f} ms)")
        for c in args.concurrency:
            log(f"judge, concurrency {c}")
            r = bench(server, args.records, c, args.latency)
            r["fraction_of_measured_ideal"] = round(r["calls_per_second"] / (c / one), 3)
            log(f"peer: a generator, {args.records} prompts, concurrency {c}")
            g = bench_kto(server, prompts(args.records), c, args.latency)
            r["generator_calls_per_second"] = g["calls_per_second"]
            r["judge_over_generator"] = round(r["calls_per_second"] / g["calls_per_second"], 3)
            log(f"peer: the bare openai SDK, {args.records} calls, concurrency {c}")
            sdk = bare_sdk(server, args.records, c, args.latency)
            r["bare_sdk_calls_per_second"] = sdk["calls_per_second"]
            r["judge_over_bare_sdk"] = round(r["calls_per_second"] / sdk["calls_per_second"], 3)
            if args.aiohttp:  # alternating runs: the SDK over httpx and over aiohttp
                r["bare_sdk_runs"] = [sdk] + [bare_sdk(server, args.records, c, args.latency, aiohttp=k % 2 == 0)
                                              for k in range(2 * args.aiohttp - 1)]
            results["kto_build_judge"].append(r)
            log(json.dumps(r))
    finally:
        server.close()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{args.records} records, server latency {args.latency * 1000:.0f} ms, {os.cpu_count()} cores "
          f"(shared machine: load averages in the JSON)\n")
    print("| concurrency | ideal calls/s | judge calls/s | fraction of ideal | fraction of C / measured call "
          "| bare openai SDK calls/s (peer) | judge / bare SDK | generator calls/s (peer) | judge / generator "
          "| labelled / scored | no-op rerun: requests, API / CLI "
          "| one changed record: requests |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results["kto_build_judge"]:
        print(f"| {r['concurrency']} | {r['ideal_calls_per_second']:.0f} | {r['calls_per_second']:.0f} | "
              f"{r['fraction_of_ideal']:.2f} | {r['fraction_of_measured_ideal']:.2f} | "
              f"{r['bare_sdk_calls_per_second']:.0f} | {r['judge_over_bare_sdk']:.2f} | "
              f"{r['generator_calls_per_second']:.0f} | {r['judge_over_generator']:.2f} | "
              f"{r['labelled']} / {r['scored']} | {r['noop_rerun_requests']}, "
              f"{r['noop_rerun_seconds_api'] * 1000:.0f} ms / {r['noop_rerun_seconds_cli'] * 1000:.0f} ms | "
              f"{r['one_changed_record_requests']} |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
