"""kill -9 trials and reader lock windows for docs/reliability.md (issue 9).

    .venv/bin/python -m bench.bench_reliability --trials 10

Scenarios (each trial a fresh project in a temp dir, the test LLM server of tests/generation on 127.0.0.1):

* ``gen``: kill -9 a generation run (400 prompts, batch 10, concurrency 4) after a random number of answers;
  count answers paid for but not stored, check the cache has one row per committed key, rerun and check the
  rerun asks only for what is missing;
* ``gen-reader``: the same while a reader holds the file (the run is waiting, back-pressure engaged);
* ``chain-reader``: kill -9 a 40-model SQL chain right after a reader got in; check every model's table
  matches its state row, rerun to completion.

Lock window: during an uninterrupted chain run, a reader opens the file with ``open_reader`` over and over;
the longest wait is the figure. Results go to bench/results/reliability.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

import duckdb  # noqa: E402

from kto_build.state import open_reader  # noqa: E402
from tests.generation.conftest import KEY_ENV, SECRET, GenProject  # noqa: E402
from tests.generation.llm_server import LLMServer  # noqa: E402
from tests.reliability.test_readers import _chain  # noqa: E402

KTO = str(Path(sys.executable).with_name("kto-build"))


def q(db: Path, sql: str):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def gen_trial(reader: bool, rng: random.Random) -> dict:
    with LLMServer(latency=0.02) as srv:
        root = Path(tempfile.mkdtemp()) / "proj"
        p = GenProject(root, srv)
        p.write("project.yml", "name: t\n")
        p.prompts([f"Write a haiku about trial thing {i}." for i in range(400)])
        p.generator(models=p.model_entry(extra="concurrency: 4"),
                    settings="batch_size: 10\nbackoff: 0.01\ncommit_seconds: 0.1")
        env = {**os.environ, KEY_ENV: SECRET}
        run = subprocess.Popen([KTO, "--project-dir", str(root), "run"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=env)
        target = rng.randint(20, 300)
        while srv.ok_requests < target and run.poll() is None:
            time.sleep(0.002)
        holder = None
        db = root / "target" / "kto_build.duckdb"
        if reader:
            holder = open_reader(db, on_wait=lambda m: None)
            t = time.monotonic()
            while srv._in_flight == 0 and time.monotonic() - t < 0.5:  # let the run hit the held file
                time.sleep(0.002)
            time.sleep(0.3)
        run.send_signal(signal.SIGKILL)
        run.wait()
        if holder is not None:
            holder.close()
        paid = srv.requests
        kept = q(db, "SELECT count(*) FROM _kto_build.generations WHERE status = 'ok'")[0][0]
        dup = q(db, "SELECT count(*) - count(DISTINCT generation_id) FROM _kto_build.generations")[0][0]
        srv.reset()
        res = subprocess.run([KTO, "--project-dir", str(root), "run"], capture_output=True, env=env)
        return {"paid": paid, "kept": kept, "lost": paid - kept, "duplicates": dup, "rerun_exit": res.returncode,
                "rerun_calls": srv.requests, "rerun_calls_expected": 400 - kept}


def chain_trial(rng: random.Random) -> dict:
    root = Path(tempfile.mkdtemp()) / "chain"
    _chain(root)
    db = root / "target" / "kto_build.duckdb"
    run = subprocess.Popen([KTO, "--project-dir", str(root), "run"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    k = rng.randint(2, 30)
    for line in run.stdout:
        if f"OK model m{k:02d}" in line:
            break
    t = time.monotonic()
    con = open_reader(db, on_wait=lambda m: None)
    waited = time.monotonic() - t
    run.send_signal(signal.SIGKILL)
    run.wait()
    con.close()
    states = q(db, "SELECT name, rows FROM _kto_build.nodes")
    bad = [n for n, rows in states if q(db, f"SELECT count(*) FROM {n}")[0][0] != rows]
    res = subprocess.run([KTO, "--project-dir", str(root), "run"], capture_output=True)
    return {"killed_after": k, "reader_waited_s": round(waited, 3), "inconsistent": bad,
            "rerun_exit": res.returncode}


def lock_window() -> dict:
    root = Path(tempfile.mkdtemp()) / "chain"
    _chain(root)
    db = root / "target" / "kto_build.duckdb"
    t0 = time.monotonic()
    run = subprocess.Popen([KTO, "--project-dir", str(root), "run"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    for line in run.stdout:
        if "OK model m00" in line:
            break
    waits = []
    while run.poll() is None:
        t = time.monotonic()
        con = open_reader(db, on_wait=lambda m: None)
        waits.append(time.monotonic() - t)
        con.close()
    for _ in run.stdout:
        pass
    return {"chain_seconds": round(time.monotonic() - t0, 2), "reads": len(waits),
            "max_wait_s": round(max(waits), 3), "median_wait_s": round(sorted(waits)[len(waits) // 2], 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "reliability.json"))
    args = ap.parse_args()
    rng = random.Random(9)
    out: dict = {"trials_per_scenario": args.trials}
    out["lock_window"] = lock_window()
    print("lock window", out["lock_window"], flush=True)
    for name, fn in (("gen", lambda: gen_trial(False, rng)), ("gen-reader", lambda: gen_trial(True, rng)),
                     ("chain-reader", lambda: chain_trial(rng))):
        trials = []
        for _ in range(args.trials):
            trials.append(fn())
            print(name, trials[-1], flush=True)
        out[name] = trials
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
