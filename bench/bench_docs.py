"""Benchmark ``kto-build docs``: the example-shaped test project (generations, answers, exports: every chart)
and the 500-model wide project of bench/engine, against ``dbt docs generate`` on the same 500 models.

Each figure is the median of --repeat runs of the CLI (a fresh process, as a user runs it):
``cold`` = an empty output folder (every chart rendered), ``warm`` = the site rebuilt over itself
(unchanged charts reused). The ratio to dbt is the comparison; the 2 s target is a figure, not an assert.

    .venv/bin/python bench/bench_docs.py            # needs bash bench/setup-peers.sh for dbt
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from bench.bench_engine import DBT, KTO, hardware, log, sh, versions
from bench.engine import projects as P

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

LOADS: dict[str, list[float]] = {}  # os.getloadavg() (1 min) before each timed run: this machine is shared


def timed(cmd: list[str], cwd: Path, repeat: int, before=None, label: str = "") -> list[float]:
    out = []
    for _ in range(repeat):
        if before:
            before()
        LOADS.setdefault(label, []).append(round(os.getloadavg()[0], 2))
        out.append(round(sh(cmd, cwd)[0], 4))
    return out


def example_project(work: Path) -> Path:
    """The tests' project (tests/docs/conftest.py): built with the local test LLM server and fed answers."""
    import tests.docs.conftest as C

    root = work / "example"
    shutil.rmtree(root, ignore_errors=True)
    return C.build_project(root)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--wide", type=int, default=500)
    ap.add_argument("--work", default=str(REPO / "bench" / "work" / "docs"))
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "docs.json"))
    ap.add_argument("--no-dbt", action="store_true")
    args = ap.parse_args()
    use_dbt = not args.no_dbt and DBT.exists()
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    res: dict = {"hardware": hardware(), "versions": versions(), "repeat": args.repeat,
                 "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "timings": {}}
    t = res["timings"]

    log("example-shaped project (test LLM server, fed answers)")
    ex = example_project(work)
    site = ex / "target" / "docs"
    t["example.docs_cold"] = timed([str(KTO), "docs"], ex, args.repeat, lambda: shutil.rmtree(site, True),
                                   "example.docs_cold")
    t["example.docs_warm"] = timed([str(KTO), "docs"], ex, args.repeat, label="example.docs_warm")

    log(f"wide project: {args.wide} models")
    wk, wd = work / "wide_kto", work / "wide_dbt"
    P.write_wide(wk, wd, work / "wide_data", args.wide)
    sh([str(KTO), "run"], wk)
    wsite = wk / "target" / "docs"
    t["wide.docs_cold"] = timed([str(KTO), "docs"], wk, args.repeat, lambda: shutil.rmtree(wsite, True),
                                "wide.docs_cold")
    t["wide.docs_warm"] = timed([str(KTO), "docs"], wk, args.repeat, label="wide.docs_warm")
    if use_dbt:
        sh([str(DBT), "run", "--profiles-dir", "."], wd)
        t["wide.dbt_docs_generate"] = timed([str(DBT), "docs", "generate", "--profiles-dir", "."], wd, args.repeat,
                                            label="wide.dbt_docs_generate")
    med = {k: round(statistics.median(v), 4) for k, v in t.items()}
    res["median_seconds"] = med
    res["loadavg_1min_before_each_run"] = LOADS
    if not use_dbt:  # keep the last dbt figure measured on this machine, marked as such
        try:
            old = json.loads(Path(args.out).read_text())
            prev = old.get("median_seconds", {}).get("wide.dbt_docs_generate") or old.get(
                "dbt_previous", {}).get("median_seconds")
            when = old.get("started_at") if "wide.dbt_docs_generate" in old.get("median_seconds", {}) else old.get(
                "dbt_previous", {}).get("measured_at")
        except (OSError, ValueError):
            prev = None
        if prev:
            res["dbt_previous"] = {"median_seconds": prev, "measured_at": when,
                                   "note": "not re-measured in this run: machine load differs, no ratio given"}
    if use_dbt:
        res["ratios"] = {f"dbt_docs_generate_over_kto_docs_{m}": round(med["wide.dbt_docs_generate"]
                                                                       / med[f"wide.docs_{m}"], 2)
                         for m in ("cold", "warm")}
    res["target_2s_wide"] = {m: med[f"wide.docs_{m}"] <= 2.0 for m in ("cold", "warm")}
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps({"median_seconds": med, "ratios": res.get("ratios")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
