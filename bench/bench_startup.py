"""CLI start-up: a no-op ``kto-build run`` on the example against the floor, ``python -c "import duckdb"``.

    .venv/bin/python -m bench.bench_startup --runs 15

Both commands run as fresh processes, alternating (floor, kto-build, floor, kto-build, ...), so that a busy
machine slows both alike; the figure is the ratio of the medians (wall clock, and CPU seconds of the child,
user + system, which a busy machine disturbs less). The project (default: the repository root,
the example) is built first if it is not already, so every timed run is a no-op. Also timed: ``kto-build
--help`` and ``kto-build ls``. Results go to bench/results/startup.json with the load average beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KTO = str(Path(sys.executable).with_name("kto-build"))
FLOOR = [sys.executable, "-c", "import duckdb"]


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system of the child), the second less sensitive to a busy machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}")
    return took, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def ensure_built(project: Path) -> None:
    """Run once so that every timed run is a no-op; refuse to time runs that build something. Byte-compile
    kto_build first, as an install does (PYTHONDONTWRITEBYTECODE would leave modules compiled on every run)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "kto_build")], check=True,
                   capture_output=True)
    subprocess.run([KTO, "run"], cwd=project, check=True, capture_output=True)
    res = subprocess.run([KTO, "plan", "--json"], cwd=project, check=True, capture_output=True, text=True)
    todo = [i["name"] for i in json.loads(res.stdout) if i["action"] == "build"]
    if todo:
        raise SystemExit(f"{project}: a run still rebuilds {', '.join(todo)}; the no-op run cannot be timed")


def measure(project: Path, runs: int) -> dict:
    commands = {"import duckdb": FLOOR, "kto-build run (no-op)": [KTO, "run"], "kto-build --help": [KTO, "--help"],
                "kto-build ls": [KTO, "ls"]}
    times: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    load_before = os.getloadavg()
    for _ in range(runs):
        for name, cmd in commands.items():  # alternating: each round runs every command once
            wall, used = timed(cmd, project)
            times[name].append(wall)
            cpu[name].append(used)
    floor = statistics.median(times["import duckdb"])
    cpu_floor = statistics.median(cpu["import duckdb"])
    rows = {name: {"median_s": round(statistics.median(t), 3), "min_s": round(min(t), 3),
                   "ratio_to_floor": round(statistics.median(t) / floor, 2),
                   "cpu_median_s": round(statistics.median(cpu[name]), 3),
                   "cpu_ratio_to_floor": round(statistics.median(cpu[name]) / cpu_floor, 2)}
            for name, t in times.items()}
    return {"runs": runs, "project": str(project), "python": sys.version.split()[0],
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()], "commands": rows}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--project", type=Path, default=REPO)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "startup.json")
    args = ap.parse_args(argv)
    ensure_built(args.project)
    res = measure(args.project, args.runs)
    for name, row in res["commands"].items():
        print(f"{name:<24} median {row['median_s']:.3f}s  min {row['min_s']:.3f}s  {row['ratio_to_floor']:.2f}x"
              f"   CPU {row['cpu_median_s']:.3f}s  {row['cpu_ratio_to_floor']:.2f}x")
    print(f"load average before {res['loadavg_before']}, after {res['loadavg_after']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    return res


if __name__ == "__main__":
    main()
