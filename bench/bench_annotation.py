"""Benchmark kto-build's argilla annotation node against the bare argilla SDK doing the same calls.

    bash scripts/install-test-services.sh
    .venv/bin/python -m bench.bench_annotation --records 10000

Starts its own redis-server and argilla-server 2.8 (SQLite, the in-process
search engine of scripts/argilla_server/) on 127.0.0.1 and stops them after.
Everything runs in this one process (argilla imported once, before timing), so
the figures compare the work, not interpreter start-up:

* push N records: ``kto-build run`` (Python API, the node's push phase and the
  whole run) vs the bare SDK (``Dataset.create`` + ``dataset.records.log``);
* pull N records with 2 answers each: the whole ``kto-build run`` (push
  nothing, fetch, diff against the log, append 2N rows, commit) vs the bare
  SDK (``dataset.records(with_responses=True)`` flattened to the same rows),
  and the raw REST pages alone;
* no-op: a second run (nothing to push, nothing new to append) and
  ``run --offline``.

The stock server ingests ~60-75 records/s on SQLite, so 10k records is
minutes per push; pass a smaller --records when time is short. Results go to
bench/results/annotation.json (or --out) with ratios against the peers.
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
import uuid
from pathlib import Path

from scripts.argilla_server import services

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Services:
    """redis-server and argilla-server for one benchmark run (scripts/argilla_server/services.py)."""

    def __init__(self, work: Path):
        self.work = work
        self.procs: list[subprocess.Popen] = []
        self.key = "owner.key." + uuid.uuid4().hex[:12]

    def start(self) -> str:
        self.work.mkdir(parents=True, exist_ok=True)
        proc, redis = services.start_redis(self.work / "redis.log")
        self.procs.append(proc)
        annotators = {name: f"{name}.key.{uuid.uuid4().hex[:8]}" for name in ("ada", "bob")}
        proc, url = services.start_argilla(self.work / "argilla", redis, self.key, annotators, "haiku")
        self.procs.append(proc)
        return url

    def stop(self):
        for p in reversed(self.procs):
            services.stop(p)


def make_project(root: Path, n: int, dataset: str) -> None:
    (root / "data").mkdir(parents=True, exist_ok=True)
    with open(root / "data" / "to_annotate.jsonl", "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"g{i:06d}", "prompt": f"Write a haiku about the number {i}",
                                 "completion": f"old pond {i}\nfrog jumps in\nsplash",
                                 "model_name": "gemma" if i % 2 else "qwen", "generator": "haiku_gen"}) + "\n")
    (root / "project.yml").write_text("name: bench_annotation\n", encoding="utf-8")
    (root / "sources.yml").write_text(f"""prompts:
  to_annotate:
    path: data/to_annotate.jsonl
annotations:
  haiku_ratings:
    records: to_annotate
    backend: argilla
    question: {{name: label, title: "Do you like this haiku?", labels: ["Yes", "No"]}}
    guidelines: A vibes only assessment is fine!
    min_submitted: 2
    argilla: {{workspace: haiku, dataset: {dataset}}}
""", encoding="utf-8")


def records_for(n: int):
    import argilla as rg

    return [rg.Record(id=f"g{i:06d}", fields={"prompt": f"Write a haiku about the number {i}",
                                             "completion": f"old pond {i}\nfrog jumps in\nsplash"},
                      metadata={"model_name": "gemma" if i % 2 else "qwen", "generator": "haiku_gen"})
            for i in range(n)]


def settings():
    import argilla as rg

    return rg.Settings(guidelines="A vibes only assessment is fine!",
                       fields=[rg.TextField(name="prompt", title="Prompt"),
                               rg.TextField(name="completion", title="Completion")],
                       questions=[rg.LabelQuestion(name="label", title="Do you like this haiku?",
                                                   labels=["Yes", "No"])],
                       metadata=[rg.TermsMetadataProperty(name="model_name"),
                                 rg.TermsMetadataProperty(name="generator")],
                       distribution=rg.TaskDistribution(min_submitted=2))


def kto_run(root: Path, offline=False) -> tuple[float, dict]:
    from kto_build.project import Project

    t = time.perf_counter()
    rr = Project.load(root).run(offline=offline)
    dt = time.perf_counter() - t
    assert rr.ok, rr.nodes
    node = next((n for n in rr.nodes if n["name"] == "haiku_ratings"), {})
    return dt, node.get("extra", {})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10000)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "annotation.json")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    n = args.records
    os.environ["TQDM_DISABLE"] = "1"
    work = Path(tempfile.mkdtemp(prefix="bench-annotation-"))
    svc = Services(work)
    results: dict = {"records": n, "answers_per_record": 2}
    try:
        url = svc.start()
        os.environ.update(ARGILLA_API_URL=url, ARGILLA_API_KEY=svc.key)
        import argilla as rg  # imported once, before any timing

        import kto_build.adapters.argilla_backend  # noqa: F401

        client = rg.Argilla(api_url=url, api_key=svc.key)
        # the annotators' setup created the workspace "haiku"

        # ---------------------------------------------------------- push
        log(f"bare SDK: push {n} records")
        recs = records_for(n)
        t = time.perf_counter()
        bare_ds = rg.Dataset(name="bare", workspace="haiku", settings=settings(), client=client).create()
        bare_ds.records.log(recs, batch_size=256)
        bare_push = time.perf_counter() - t
        log(f"  {bare_push:.2f}s")

        root = work / "project"
        make_project(root, n, "kto")
        log(f"kto-build: push {n} records (first run)")
        from kto_build.project import Project

        Project.load(root).run(select=["to_annotate"])  # the records model, untimed
        kto_first, extra = kto_run(root)
        log(f"  run {kto_first:.2f}s, push phase {extra['push_seconds']:.2f}s")
        assert extra["pushed"] == n
        results["push"] = {"bare_sdk_s": round(bare_push, 3), "kto_push_phase_s": extra["push_seconds"],
                           "kto_run_s": round(kto_first, 3),
                           "ratio_push_phase": round(extra["push_seconds"] / bare_push, 3),
                           "ratio_run": round(kto_first / bare_push, 3)}

        # -------------------------------------------------- answers (setup)
        log(f"setup: 2 answers on each of {n} records (owner on behalf of ada and bob, untimed)")
        users = {u.username: u.id for u in client.users}
        kto_ds = client.datasets("kto", workspace="haiku")
        answered = []
        for i, r in enumerate(records_for(n)):
            r.responses.add(rg.Response("label", "Yes" if i % 3 else "No", user_id=users["ada"], status="submitted"))
            r.responses.add(rg.Response("label", "Yes" if i % 5 else "No", user_id=users["bob"], status="submitted"))
            answered.append(r)
        t = time.perf_counter()
        kto_ds.records.log(answered, batch_size=256)
        results["setup_answers_s"] = round(time.perf_counter() - t, 3)

        # ---------------------------------------------------------- pull
        log("bare SDK: pull every record with responses, flattened to rows")
        t = time.perf_counter()
        rows = []
        for rec in kto_ds.records(with_responses=True):
            for resp in rec.responses:
                rows.append((rec.id, resp.user_id, resp.question_name, resp.value, str(resp.status)))
        bare_pull = time.perf_counter() - t
        assert len(rows) == 2 * n, len(rows)
        log(f"  {bare_pull:.2f}s, {len(rows)} rows")

        log("raw REST pages (what kto-build fetches)")
        from kto_build.adapters.argilla_backend import ArgillaBackend, Where

        b = ArgillaBackend(url, svc.key, Where("bench", 0))
        t = time.perf_counter()
        fetched = list(b.responses(str(kto_ds.id)))
        rest_pull = time.perf_counter() - t
        b.close()
        assert len(fetched) == 2 * n

        log("kto-build: pull (second run: nothing to push, 2N new rows)")
        kto_pull, extra = kto_run(root)
        assert extra["appended"] == 2 * n, extra
        log(f"  run {kto_pull:.2f}s, fetch phase {extra['fetch_seconds']:.2f}s")
        results["pull"] = {"bare_sdk_s": round(bare_pull, 3), "raw_rest_s": round(rest_pull, 3),
                           "kto_fetch_phase_s": extra["fetch_seconds"], "kto_run_s": round(kto_pull, 3),
                           "ratio_run_vs_sdk": round(kto_pull / bare_pull, 3)}

        # ---------------------------------------------------------- no-op
        log("kto-build: no-op run (nothing to push, nothing new)")
        noop, extra = kto_run(root)
        assert extra["pushed"] == 0 and extra["appended"] == 0
        offline, _ = kto_run(root, offline=True)
        results["noop"] = {"kto_run_s": round(noop, 3), "kto_run_offline_s": round(offline, 3),
                           "ratio_run_vs_sdk_pull": round(noop / bare_pull, 3)}
        log(f"  {noop:.2f}s (offline {offline:.3f}s)")
    finally:
        svc.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    results["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "platform": platform.platform()}
    results["generated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
