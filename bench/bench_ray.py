"""Benchmark LLM calls on Ray against one process, and the driver's single DuckDB writer.

    .venv/bin/python bench/bench_ray.py [--only ceiling,server,commit,gemma,noop] [--prompts 4000]

Sections (each records os.getloadavg() at its start and end; the machine has 2 cores shared with other
work, so figures are ratios between peers measured in the same section, not absolute speeds):

- ceiling: tests/generation/llm_server.py in its own process, hammered by several client processes over
  raw keep-alive HTTP (no SDK): the server's own requests/s on this machine, at its 100 ms latency and at 0.
- server: the generator node (`Project.run()` on a temp project: prompts -> generator -> DuckDB batches),
  --prompts prompts at --latency, one process at concurrency 32 and 64, and with `ray:` 2 and 4 actors at
  the same total concurrency (on a real 2-node loopback cluster). Figure: the generation phase's calls/s as
  a fraction of the ideal min(concurrency / latency, measured ceiling).
- gemma: the example's local model (LlamaCppCompletionLLM): output tokens/s of the node in one process vs
  with `ray:` 2 actors, one per node (model loading excluded on both sides: the node's generation clock).
- noop: a no-op rerun with `ray:` configured vs without (API and CLI): no cluster contact, same time.
- commit: the driver's commit rate, rows/s of generation rows written in batches as the node writes them
  (``Batcher.commit``: one Arrow insert per batch, the write connection held across batches), batches of
  200 and 2000, on an empty cache and on one holding 1M rows; peer: the path before (a connection per batch,
  INSERT OR REPLACE ... VALUES with bound parameters).

Writes (merges into) bench/results/ray.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PY = sys.executable
OUT = HERE / "results" / "ray.json"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------- the server's own ceiling
CLIENT = r"""
import asyncio, json, sys, time
host, port, n, conns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
body = json.dumps({"model": "test-model", "messages": [{"role": "user", "content": "a haiku please"}],
                   "max_tokens": 32}).encode()
req = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
       f"Content-Length: {len(body)}\r\n\r\n").encode() + body

async def conn(count):
    r, w = await asyncio.open_connection(host, port)
    for _ in range(count):
        w.write(req)
        head = await r.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await r.readexactly(length)
    w.close()

async def main():
    print("ready", flush=True)
    sys.stdin.readline()
    t0 = time.time()
    await asyncio.gather(*(conn(n // conns) for _ in range(conns)))
    print(json.dumps({"start": t0, "end": time.time(), "requests": (n // conns) * conns}), flush=True)

asyncio.run(main())
"""


class Server:
    """tests/generation/llm_server.py in its own process (not sharing the client's GIL)."""

    def __init__(self, latency: float):
        self.proc = subprocess.Popen([PY, str(REPO / "tests" / "generation" / "llm_server.py"), "--port", "0",
                                      "--latency", str(latency)], stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()
        self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def ceiling_once(latency: float, procs: int, conns: int, per_proc: int) -> dict:
    srv = Server(latency)
    try:
        clients = [subprocess.Popen([PY, "-c", CLIENT, "127.0.0.1", str(srv.port), str(per_proc), str(conns)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(procs)]
        for c in clients:
            assert c.stdout.readline().strip() == "ready"
        for c in clients:  # all start together
            c.stdin.write("go\n")
            c.stdin.flush()
        outs = [json.loads(c.stdout.readline()) for c in clients]
        for c in clients:
            c.wait()
    finally:
        srv.close()
    total = sum(o["requests"] for o in outs)
    secs = max(o["end"] for o in outs) - min(o["start"] for o in outs)
    return {"latency_seconds": latency, "client_processes": procs, "connections_each": conns, "requests": total,
            "seconds": round(secs, 3), "requests_per_second": round(total / secs, 1)}


def bench_ceiling(latency: float) -> dict:
    res = {"loadavg_start": load(), "runs": []}
    for lat, procs, conns, per in ((latency, 4, 64, 1536), (latency, 8, 64, 1024), (0.0, 4, 16, 1536)):
        log(f"ceiling: latency {lat}, {procs} client processes x {conns} connections")
        res["runs"].append(ceiling_once(lat, procs, conns, per))
        log(json.dumps(res["runs"][-1]))
    at_latency = [r["requests_per_second"] for r in res["runs"] if r["latency_seconds"] == latency]
    res["ceiling_requests_per_second"] = max(at_latency)
    res["loadavg_end"] = load()
    return res


# ---------------------------------------------------------------- the generator node, with and without Ray
KEY_ENV = "KTO_BENCH_KEY"


def make_project(root: Path, n: int, model_yaml: str, ray_yaml: str = "", batch_size: int = 200) -> None:
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "project.yml").write_text("name: bench_ray\n")
    with open(root / "data" / "prompts.jsonl", "w") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"p{i}", "text": f"Write a haiku about benchmark topic number {i}."}) + "\n")
    (root / "sources.yml").write_text(
        "prompts:\n  raw: {path: data/prompts.jsonl, text: text, id: id}\n"
        f"generators:\n  gens:\n    prompts: raw\n    batch_size: {batch_size}\n{ray_yaml}"
        f"    models:\n{model_yaml}")


def server_model(url: str, concurrency: int) -> str:
    return (f"      - name: srv\n        llm: OpenAILLM\n        params: {{model: test-model, base_url: \"{url}\"}}\n"
            f"        api_key_env: {KEY_ENV}\n        concurrency: {concurrency}\n"
            f"        generation: {{temperature: 0.7, max_new_tokens: 32}}\n")


def bare_sdk(srv: Server, n: int, concurrency: int) -> float:
    """Calls/s of an AsyncOpenAI client and a semaphore, the same requests as ``server_model`` (max 32 tokens)."""
    import asyncio

    import openai

    async def go() -> float:
        gate = asyncio.Semaphore(concurrency)
        async with openai.AsyncOpenAI(base_url=srv.url, api_key="bench-key", max_retries=0) as client:
            async def one(i: int) -> None:
                async with gate:
                    out = await client.chat.completions.create(
                        model="test-model", messages=[{"role": "user", "content": f"Write a haiku about topic {i}"}],
                        temperature=0.7, max_tokens=32)
                    assert out.choices[0].message.content

            t = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(n)))
            return time.perf_counter() - t

    return n / asyncio.run(go())


def ray_yaml(cluster, actors: int) -> str:
    res = "[{head_node: 1}, {worker_node: 1}]"
    return (f"    ray: {{address: \"{cluster.address}\", actors: {actors}, num_cpus: 1, num_gpus: 0, "
            f"resources: {res}}}\n")


def run_node(root: Path) -> dict:
    from kto_build.project import Project

    t = time.perf_counter()
    rr = Project.load(root).run()
    wall = time.perf_counter() - t
    assert rr.ok, rr.nodes
    node = rr.node("gens")
    calls = (node.get("extra") or {}).get("calls", 0)  # a skipped node (no-op rerun) has no extra
    message = node.get("message") or ""
    gen_seconds = float(message.split(" calls in ")[1].split("s")[0]) if calls else 0.0
    out = {"calls": calls, "generation_seconds": gen_seconds, "run_wall_seconds": round(wall, 3),
           "output_tokens": _tokens(message)}
    if calls:
        out["calls_per_second"] = round(calls / gen_seconds, 1)
    return out


def _tokens(message: str) -> int:
    return int(message.split(" tokens out")[0].rsplit(" ", 1)[-1]) if " tokens out" in message else 0


def workers(root: Path) -> list[str]:
    import duckdb

    con = duckdb.connect(str(root / "target" / "kto_build.duckdb"), read_only=True)
    try:
        return sorted(r[0] or "" for r in con.execute("SELECT DISTINCT worker FROM gens").fetchall())
    except duckdb.Error:
        return []
    finally:
        con.close()


def bench_server(tmp: Path, cluster, n: int, latency: float, ceiling: float | None) -> dict:
    os.environ[KEY_ENV] = "bench-key"
    srv = Server(latency)
    res = {"prompts": n, "latency_seconds": latency, "ceiling_requests_per_second": ceiling,
           "loadavg_start": load(), "runs": []}
    variants = [(32, 0), (64, 0)] + ([(32, 2), (32, 4), (64, 2), (64, 4)] if cluster else [])
    try:
        for conc, actors in variants:
            root = tmp / f"server-{conc}-{actors}"
            per = conc // actors if actors else conc
            make_project(root, n, server_model(srv.url, per), ray_yaml(cluster, actors) if actors else "")
            log(f"server: concurrency {conc}, " + (f"Ray {actors} actors x {per}" if actors else "one process"))
            r = {"total_concurrency": conc, "ray_actors": actors, "concurrency_each": per, "loadavg": load(),
                 **run_node(root)}
            ideal = min(conc / latency, ceiling or conc / latency)
            r["ideal_calls_per_second"] = round(ideal, 1)
            r["fraction_of_ideal"] = round(r["calls_per_second"] / ideal, 3)
            if actors:
                r["workers"] = workers(root)
            res["runs"].append(r)
            log(json.dumps(r))
        for conc in (32, 64):  # the peer: what one process's HTTP stack gives with no kto-build around it
            r = {"total_concurrency": conc, "peer": "bare openai SDK, one process", "loadavg": load(),
                 "calls_per_second": round(bare_sdk(srv, n, conc), 1)}
            r["fraction_of_ideal"] = round(r["calls_per_second"] / min(conc / latency, ceiling or conc / latency), 3)
            res["runs"].append(r)
            log(json.dumps(r))
    finally:
        srv.close()
    res["target_fraction_of_ideal"] = 0.9
    res["loadavg_end"] = load()
    return res


# ---------------------------------------------------------------- the example's local model
def gemma_model(n_threads: int | None = None) -> str:
    import yaml

    src = yaml.safe_load((REPO / "sources.yml").read_text())
    m = next(m for g in src["generators"].values() for m in g["models"] if m["llm"] == "LlamaCppCompletionLLM")
    params = dict(m.get("params") or {})
    if n_threads:
        params["n_threads"] = n_threads
    return (f"      - name: gemma\n        llm: LlamaCppCompletionLLM\n        params: {json.dumps(params)}\n"
            f"        generation: {json.dumps(m.get('generation') or {})}\n        retries: 0\n")


def bench_gemma(tmp: Path, cluster, n: int) -> dict:
    res = {"prompts": n, "loadavg_start": load(), "runs": []}
    variants = [("one_process", gemma_model(), ""), ("one_process_2_threads", gemma_model(2), "")]
    if cluster:
        variants.append(("ray_2_actors", gemma_model(), ray_yaml(cluster, 2)))
    for name, model, ray in variants:
        root = tmp / f"gemma-{name}"
        make_project(root, n, model, ray, batch_size=4)
        log(f"gemma: {name}")
        r = {"variant": name, "loadavg": load(), **run_node(root)}
        r["tokens_per_second"] = round(r["output_tokens"] / r["generation_seconds"], 2)
        if ray:
            r["workers"] = workers(root)
        res["runs"].append(r)
        log(json.dumps(r))
    by = {r["variant"]: r["tokens_per_second"] for r in res["runs"]}
    if "ray_2_actors" in by:
        res["speedup_2_actors_vs_one_process"] = round(by["ray_2_actors"] / by["one_process"], 2)
    res["target"] = 1.6
    res["loadavg_end"] = load()
    return res


# ---------------------------------------------------------------- no-op rerun with ray: configured
def bench_noop(tmp: Path, repeats: int = 5) -> dict:
    """A finished project rerun with and without `ray:` (pointing at an address nothing listens on: a no-op run
    must not contact it). Both built once without Ray, then `ray:` added to one (it does not change the key)."""
    os.environ[KEY_ENV] = "bench-key"
    srv = Server(0.0)
    res = {"loadavg_start": load()}
    kto = str(Path(PY).parent / "kto-build")
    try:
        roots = {}
        for name in ("without_ray", "with_ray"):
            roots[name] = root = tmp / f"noop-{name}"
            make_project(root, 200, server_model(srv.url, 16))
            run_node(root)
            if name == "with_ray":
                make_project(root, 200, server_model(srv.url, 16),
                             "    ray: {address: \"127.0.0.2:1\", actors: 2, num_cpus: 1, num_gpus: 0}\n")
        for name, root in roots.items():
            api, cli = [], []
            for _ in range(repeats):
                r = run_node(root)
                assert r["calls"] == 0, r
                api.append(r["run_wall_seconds"])
                t = time.perf_counter()
                p = subprocess.run([kto, "--project-dir", str(root), "run"], capture_output=True, text=True)
                cli.append(time.perf_counter() - t)
                assert p.returncode == 0, p.stderr
            res[name] = {"api_seconds_median": round(sorted(api)[len(api) // 2], 4),
                         "cli_seconds_median": round(sorted(cli)[len(cli) // 2], 3)}
            log(f"noop {name}: {res[name]}")
    finally:
        srv.close()
    res["cli_ratio_with_vs_without"] = round(res["with_ray"]["cli_seconds_median"]
                                             / res["without_ray"]["cli_seconds_median"], 2)
    res["loadavg_end"] = load()
    return res


# ---------------------------------------------------------------- the single writer's commit rate
def _rows(start: int, n: int) -> list[tuple]:
    from datetime import UTC, datetime

    from kto_build.nodes.generation import NAMES

    now = datetime.now(UTC).replace(tzinfo=None)
    haiku = "an old silent pond\na frog jumps into the pond\nsplash! silence again " * 2
    out = []
    for i in range(start, start + n):
        v = {"generation_id": f"{i:032x}", "prompt_id": f"p{i}", "prompt": f"Write a haiku about topic {i}.",
             "system_prompt": "You write haiku.", "generator": "gens", "model_name": "m", "model_fingerprint": "f" * 16,
             "sample_index": 0, "completion": haiku,
             "status": "ok", "error": None, "generation_kwargs": '{"temperature": 0.7}', "input_tokens": 20,
             "output_tokens": 40, "latency_ms": 812.5, "created_at": now, "worker": "host:1234"}
        out.append(tuple(v[c] for c in NAMES))
    return out


def commit_values(db_path: Path, rows: list[tuple], batch: int) -> float:
    """The path before issue 11/12 (the peer): a new connection per batch, one transaction, INSERT OR REPLACE
    with a parameterised VALUES list in chunks of 500."""
    from kto_build.nodes.generation import CACHE, CACHE_DDL, NAMES
    from kto_build.state import Database

    db = Database(db_path)
    placeholders = "(" + ", ".join("?" for _ in NAMES) + ")"
    t = time.perf_counter()
    for b in range(0, len(rows), batch):
        with db.connect() as con:
            con.execute("BEGIN TRANSACTION")
            con.execute(CACHE_DDL)
            part = rows[b:b + batch]
            for i in range(0, len(part), 500):
                chunk = part[i:i + 500]
                con.execute(f"INSERT OR REPLACE INTO {CACHE} ({', '.join(NAMES)}) VALUES "
                            + ", ".join(placeholders for _ in chunk), [v for r in chunk for v in r])
            con.execute("COMMIT")
    return time.perf_counter() - t


def commit_node(db_path: Path, rows: list[tuple], batch: int) -> float:
    """The node's own path: ``Batcher.commit`` of ``GenerationRow``s through ``GenerationSink`` (one Arrow
    insert per batch, the write connection held across batches and let go every HOLD_SECONDS)."""
    from types import SimpleNamespace

    from kto_build.nodes.generation import GenerationRow
    from kto_build.nodes.generation.batcher import Batcher
    from kto_build.nodes.generation.cache import GenerationSink
    from kto_build.nodes.generation.calls import CallStats
    from kto_build.state import Database

    ctx = SimpleNamespace(db=Database(db_path), reporter=None)
    batcher = Batcher(ctx, GenerationSink("gens", "You write haiku.", []), batch, 5.0, CallStats())
    objs = [GenerationRow(*r) for r in rows]
    t = time.perf_counter()
    for b in range(0, len(objs), batch):
        batcher.commit(objs[b:b + batch])
    batcher.close()
    return time.perf_counter() - t


def preload(db_path: Path, n: int) -> None:
    import duckdb

    from kto_build.nodes.generation import CACHE, CACHE_DDL, NAMES

    con = duckdb.connect(str(db_path))
    con.execute("CREATE SCHEMA IF NOT EXISTS _kto_build")
    con.execute(CACHE_DDL)
    row = dict(zip(NAMES, _rows(0, 1)[0], strict=True))
    cols = ", ".join("lpad(to_hex(i + 1000000000), 32, '0')" if c == "generation_id" else "?" for c in NAMES)
    con.execute(f"INSERT INTO {CACHE} SELECT {cols} FROM range({n}) t(i)",
                [row[c] for c in NAMES if c != "generation_id"])
    con.close()


def bench_commit(tmp: Path, rows_n: int, preload_n: int) -> dict:
    res = {"rows": rows_n, "loadavg_start": load(), "runs": []}
    rows = _rows(0, rows_n)
    for existing in (0, preload_n):
        for batch, how, fn in ((200, "before: values, open per batch", commit_values),
                               (2000, "before: values, open per batch", commit_values),
                               (200, "node: arrow, held connection", commit_node),
                               (2000, "node: arrow, held connection", commit_node)):
            db = tmp / f"commit-{existing}-{batch}-{fn.__name__}.duckdb"
            preload(db, existing)
            secs = fn(db, rows, batch)
            r = {"rows_in_cache_before": existing, "batch_size": batch, "insert": how, "seconds": round(secs, 3),
                 "rows_per_second": round(rows_n / secs), "loadavg": load()}
            res["runs"].append(r)
            log(json.dumps(r))
            db.unlink()
    res["loadavg_end"] = load()
    return res


# ---------------------------------------------------------------- main
def main() -> None:
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="ceiling,server,gemma,noop,commit")
    ap.add_argument("--prompts", type=int, default=4000)
    ap.add_argument("--gemma-prompts", type=int, default=64)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray variants (no cluster)")
    ap.add_argument("--commit-rows", type=int, default=4000)
    ap.add_argument("--commit-preload", type=int, default=1_000_000)
    args = ap.parse_args()
    only = set(args.only.split(","))
    result = json.loads(OUT.read_text()) if OUT.exists() else {}
    result["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                         "note": "2 cores shared with other sessions (see each section's loadavg)"}
    with tempfile.TemporaryDirectory(prefix="kto-bench-ray-") as t:
        tmp = Path(t)
        if "ceiling" in only:
            result["ceiling"] = {**bench_ceiling(args.latency), "when": time.strftime("%Y-%m-%d %H:%M")}
        ceiling = (result.get("ceiling") or {}).get("ceiling_requests_per_second")
        if "commit" in only:
            result["commit"] = {**bench_commit(tmp, args.commit_rows, args.commit_preload),
                                "when": time.strftime("%Y-%m-%d %H:%M")}
        if "noop" in only:
            result["noop"] = {**bench_noop(tmp), "when": time.strftime("%Y-%m-%d %H:%M")}
        if only & {"server", "gemma"}:
            cluster = None
            if not args.no_ray:
                from scripts.ray_cluster import LoopbackCluster

                cluster = LoopbackCluster(tmp / "ray", head_cpus=2, worker_cpus=2).__enter__()
                result["cluster_start_seconds"] = round(cluster.start_seconds, 1)
                log(f"cluster up in {cluster.start_seconds:.1f} s")
            try:
                if "server" in only:
                    result["server"] = {**bench_server(tmp, cluster, args.prompts, args.latency, ceiling),
                                        "when": time.strftime("%Y-%m-%d %H:%M")}
                if "gemma" in only:
                    result["gemma"] = {**bench_gemma(tmp, cluster, args.gemma_prompts),
                                       "when": time.strftime("%Y-%m-%d %H:%M")}
            finally:
                if cluster:
                    cluster.__exit__(None, None, None)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items()}, indent=2))


if __name__ == "__main__":
    main()
