"""Benchmark kto-build's engine against dbt-duckdb and bare DuckDB on the same SQL and data.

    bash bench/setup-peers.sh && .venv/bin/python -m bench.bench_engine --prompts 100000

Measures (median of --repeat runs, wall clock of each tool's CLI as a subprocess;
in-process too where that is fair):

* cold build: kto-build run vs dbt run vs bare DuckDB, on a fresh database file;
* no-op run: kto-build run vs dbt run (and dbt's own closest: --select state:modified+);
* one-leaf edit of model_leaderboard: kto-build run vs dbt run --select it vs dbt run;
* a 500-model wide project: kto-build ls / plan vs dbt parse / dbt ls;
* the reference check: kto-build's kto and dpo tables vs bench/engine/reference.py, row for row.

Raw numbers go to bench/results/engine.json (or --out), one entry per --prompts size
({"runs": {"100000": {...}}}); a markdown table is printed.
See docs/bench-engine.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import hashlib
import io
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.engine import projects as P
from bench.engine import reference as R
from bench.engine import workload as W

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

KTO = REPO / ".venv" / "bin" / "kto-build"
PY = REPO / ".venv" / "bin" / "python"
DBT = REPO / ".venv-bench" / "bin" / "dbt"
LEAF = "model_leaderboard"
TARGETS = {"noop_vs_dbt_run": 10.0, "cold_vs_bare": 1.15, "wide_plan_vs_dbt_parse": 10.0}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(cmd: list[str], cwd: Path, check: bool = True) -> tuple[float, str]:
    """Run a command, return (seconds, stdout+stderr)."""
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1", "NO_COLOR": "1"}
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t
    out = p.stdout + p.stderr
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({p.returncode}) in {cwd}:\n{out[-3000:]}")
    return dt, out


def med(xs: list[float]) -> float:
    return round(statistics.median(xs), 4)


def stats(xs: list[float]) -> dict:
    return {"median": med(xs), "min": round(min(xs), 4), "max": round(max(xs), 4), "runs": [round(x, 4) for x in xs]}


def run_results(root: Path, db_dir: str = "target") -> dict:
    rr = json.loads((root / db_dir / "run_results.json").read_text())
    counts: dict[str, int] = {}
    for n in rr["nodes"]:
        counts[n["status"]] = counts.get(n["status"], 0) + 1
    return {"counts": counts, "built": sorted(n["name"] for n in rr["nodes"] if n["status"] == "built")}


def rm_db(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)


def versions() -> dict:
    import duckdb
    import sqlglot

    import kto_build

    v = {"python": platform.python_version(), "duckdb": duckdb.__version__, "sqlglot": sqlglot.__version__,
         "kto_build": kto_build.__version__}
    if DBT.exists():
        code = ("import importlib.metadata as m, duckdb; "
                "print(m.version('dbt-core'), m.version('dbt-duckdb'), duckdb.__version__)")
        out = subprocess.run([str(DBT.parent / "python"), "-c", code], capture_output=True, text=True).stdout.split()
        v.update({"dbt_core": out[0], "dbt_duckdb": out[1], "dbt_venv_duckdb": out[2]})
    return v


def hardware() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024**2:.0f} GiB"
    return f"{os.cpu_count()} cores ({model}), {mem} RAM, {platform.system()} {platform.release()}"


def leaf_edit(sql: str, i: int) -> str:
    """A real rule change to the leaf (a new column), valid for any SELECT."""
    return f"select *, {i} as bench_edit from (\n{sql.rstrip().rstrip(';')}\n) as bench_edited\n"


def profile_call(fn, top: int = 12) -> list[str]:
    pr = cProfile.Profile()
    pr.enable()
    fn()
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(top)
    return [ln for ln in s.getvalue().splitlines() if ln.strip()][:top + 8]


def import_time(module: str) -> dict:
    """python -X importtime: the total and the heaviest top-level imports (milliseconds, cumulative)."""
    p = subprocess.run([str(PY), "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True)
    top = []
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cum, name = line[len("import time:"):].split("|", 2)
        if len(name) - len(name.lstrip()) == 1:  # a top-level import
            top.append((round(int(cum) / 1000, 1), name.strip()))
    top.sort(reverse=True)
    return {"total_ms": round(sum(ms for ms, _ in top), 1), "top_ms": top[:10]}


# --------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description="kto-build engine benchmark vs dbt-duckdb and bare DuckDB")
    ap.add_argument("--prompts", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--wide", type=int, default=500, help="models in the wide project (0: skip)")
    ap.add_argument("--wide-dbt-run", action="store_true", help="also time dbt run on the wide project (slow)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=str(REPO / "bench" / "work" / "engine"))
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "engine.json"))
    ap.add_argument("--models", choices=("auto", "example", "fallback"), default="auto")
    ap.add_argument("--no-dbt", action="store_true", help="kto-build and bare DuckDB only")
    ap.add_argument("--summary", action="store_true", help="print the table of every size in --out; run nothing")
    args = ap.parse_args()
    if args.summary:
        print(summary(json.loads(Path(args.out).read_text())))
        return 0

    use_dbt = not args.no_dbt
    if use_dbt and not DBT.exists():
        sys.exit("dbt not found in .venv-bench: run `bash bench/setup-peers.sh` first (or pass --no-dbt)")
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    res: dict = {"prompts": args.prompts, "repeat": args.repeat, "hardware": hardware(), "versions": versions(),
                 "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "load_average_at_start": os.getloadavg()}
    t_all = time.perf_counter()

    # ------------------------------------------------------------ workload
    data = work / f"data-{args.prompts}-{args.seed}"
    stamp = data / "workload.json"
    gen_hash = hashlib.sha256((HERE / "engine" / "workload.py").read_bytes()).hexdigest()[:16]
    if not stamp.exists() or json.loads(stamp.read_text()).get("source_hash") != gen_hash:
        log(f"generating workload: {args.prompts} prompts")
        shutil.rmtree(data, ignore_errors=True)
        counts = W.generate(data, args.prompts, args.seed)
        stamp.write_text(json.dumps({**counts, "source_hash": gen_hash}))
    counts = json.loads(stamp.read_text())
    counts.pop("source_hash", None)
    counts["parquet_mb"] = round(sum(f.stat().st_size for f in data.glob("*.parquet")) / 2**20, 1)
    res["workload"] = counts
    log(f"workload: {counts}")

    models = P.load_models(args.models)
    wl = P.Workload(data, models)
    res["models"] = {"origin": models.origin, "names": sorted(models.sql), "vars": models.vars}
    log(f"models: {models.origin} ({', '.join(wl.order())})")
    kto_root = wl.write_kto(work / "kto")
    dbt_root = wl.write_dbt(work / "dbt") if use_dbt else None
    stmts = wl.bare_statements()
    bare_json = wl.write_bare(work / "bare_statements.json")
    bare_script = HERE / "engine" / "bare.py"
    kto_db = kto_root / "target" / "bench.duckdb"
    dbt_db = dbt_root / "target" / "bench.duckdb" if dbt_root else None
    bare_db = work / "bare.duckdb"
    n = args.repeat
    timings: dict[str, list[float]] = {}

    def add(key: str, dt: float) -> None:
        timings.setdefault(key, []).append(dt)

    # ---------------------------------------------------------- cold build
    log("cold builds")
    if use_dbt:  # dbt's first parse of the project, kept out of the cold timings (its cache stays warm)
        sh([str(DBT), "parse", "--profiles-dir", "."], dbt_root)
    from kto_build.project import Project

    for i in range(n):
        shutil.rmtree(kto_root / "target", ignore_errors=True)
        dt, _ = sh([str(KTO), "run"], kto_root)
        add("cold.kto_build_cli", dt)
        rr = run_results(kto_root)
        assert rr["counts"] == {"built": len(stmts) - len(models.vars)}, rr
        rm_db(kto_db)  # a fresh database, target/'s parse cache kept (as dbt's partial parse is kept warm above)
        add("cold.kto_build_cli_fresh_db", sh([str(KTO), "run"], kto_root)[0])
        rm_db(bare_db)
        dt, _ = sh([str(PY), str(bare_script), str(bare_json), str(bare_db)], work)
        add("cold.bare_duckdb_subprocess", dt)
        rm_db(bare_db)
        t = time.perf_counter()
        P.run_bare(bare_db, stmts)
        add("cold.bare_duckdb_inprocess", time.perf_counter() - t)
        shutil.rmtree(kto_root / "target", ignore_errors=True)
        t = time.perf_counter()
        Project.load(kto_root).run()
        add("cold.kto_build_inprocess", time.perf_counter() - t)
        if use_dbt:
            rm_db(dbt_db)
            dt, _ = sh([str(DBT), "run", "--profiles-dir", "."], dbt_root)
            add("cold.dbt_run", dt)
        log(f"  cold #{i + 1}: " + ", ".join(f"{k.split('.', 1)[1]} {v[-1]:.2f}s"
                                            for k, v in timings.items() if k.startswith("cold.")))

    # --------------------------------------------------- reference check
    log("reference check (kto, dpo vs bench/engine/reference.py)")
    t = time.perf_counter()
    res["reference_check"] = R.compare(kto_db, data, models.vars)
    res["reference_check"]["seconds"] = round(time.perf_counter() - t, 2)
    # the three tools build the same tables
    res["same_tables"] = same_tables(kto_db, [bare_db] + ([dbt_db] if use_dbt else []),
                                     [m for m in wl.order() if m in models.sql])
    log(f"  {res['reference_check']}")

    # --------------------------------------------------------------- no-op
    log("no-op runs")
    if use_dbt:
        state_dir = work / "dbt_state"
        shutil.rmtree(state_dir, ignore_errors=True)
        shutil.copytree(dbt_root / "target", state_dir, ignore=shutil.ignore_patterns("*.duckdb*"))
    for _ in range(n):
        dt, _ = sh([str(KTO), "run"], kto_root)
        add("noop.kto_build_cli", dt)
        assert run_results(kto_root)["counts"] == {"skipped": len(stmts) - len(models.vars)}
        t = time.perf_counter()
        Project.load(kto_root).run()
        add("noop.kto_build_inprocess", time.perf_counter() - t)
        if use_dbt:
            dt, _ = sh([str(DBT), "run", "--profiles-dir", "."], dbt_root)
            add("noop.dbt_run", dt)
            dt, out = sh([str(DBT), "run", "--profiles-dir", ".", "--select", "state:modified+", "--state",
                          str(state_dir)], dbt_root)
            add("noop.dbt_run_state_modified", dt)

    # ----------------------------------------------------------- leaf edit
    log(f"one-leaf edits ({LEAF})")
    kto_leaf = kto_root / "models" / f"{LEAF}.sql"
    kto_orig = kto_leaf.read_text()
    dbt_leaf = dbt_root / "models" / f"{LEAF}.sql" if use_dbt else None
    dbt_orig = dbt_leaf.read_text() if use_dbt else None
    edit_no = 0
    try:
        for _ in range(n):
            edit_no += 1
            kto_leaf.write_text(leaf_edit(kto_orig, edit_no))
            dt, _ = sh([str(KTO), "run"], kto_root)
            add("leaf.kto_build_cli", dt)
            rr = run_results(kto_root)
            assert rr["built"] == [LEAF], rr
            if use_dbt:
                dbt_leaf.write_text(leaf_edit(dbt_orig, edit_no))
                dt, _ = sh([str(DBT), "run", "--profiles-dir", ".", "--select", LEAF], dbt_root)
                add("leaf.dbt_run_select", dt)
                edit_no += 1
                dbt_leaf.write_text(leaf_edit(dbt_orig, edit_no))
                dt, _ = sh([str(DBT), "run", "--profiles-dir", "."], dbt_root)
                add("leaf.dbt_run_all", dt)
        # kto-build's plan of an edit, for the record
        kto_leaf.write_text(leaf_edit(kto_orig, 999))
        dt, out = sh([str(KTO), "plan"], kto_root)
        res["leaf_plan_output"] = out.strip().splitlines()[-14:]
    finally:
        kto_leaf.write_text(kto_orig)
        if use_dbt:
            dbt_leaf.write_text(dbt_orig)

    # ------------------------------------------------------------ wide project
    if args.wide:
        log(f"wide project: {args.wide} models")
        res["wide_n"] = args.wide
        wk, wd = work / "wide_kto", work / "wide_dbt"
        P.write_wide(wk, wd, work / "wide_data", args.wide)
        for _ in range(n):
            add("wide.kto_build_ls_nodb", sh([str(KTO), "ls"], wk)[0])
            add("wide.kto_build_plan_nodb", sh([str(KTO), "plan"], wk)[0])
            t = time.perf_counter()
            Project.load(wk).plan()
            add("wide.kto_build_plan_inprocess_nodb", time.perf_counter() - t)
        dt, _ = sh([str(KTO), "run"], wk)
        add("wide.kto_build_run_cold", dt)
        for _ in range(n):
            add("wide.kto_build_ls_built", sh([str(KTO), "ls"], wk)[0])
            add("wide.kto_build_plan_built", sh([str(KTO), "plan"], wk)[0])
            t = time.perf_counter()
            Project.load(wk).plan()
            add("wide.kto_build_plan_inprocess_built", time.perf_counter() - t)
        add("wide.kto_build_run_noop", sh([str(KTO), "run"], wk)[0])
        res["wide_profile_plan"] = profile_call(lambda: Project.load(wk).plan())
        if use_dbt:
            for _ in range(n):
                shutil.rmtree(wd / "target", ignore_errors=True)
                add("wide.dbt_parse_full", sh([str(DBT), "parse", "--profiles-dir", ".", "--no-partial-parse"],
                                              wd)[0])
                add("wide.dbt_parse_partial", sh([str(DBT), "parse", "--profiles-dir", "."], wd)[0])
                add("wide.dbt_ls", sh([str(DBT), "ls", "--profiles-dir", "."], wd)[0])
            if args.wide_dbt_run:
                add("wide.dbt_run_cold", sh([str(DBT), "run", "--profiles-dir", "."], wd)[0])

    # ------------------------------------------------------- profiles
    res["import_time"] = {m: import_time(m) for m in ("kto_build.cli", "kto_build.cli, kto_build.project, "
                                                      "kto_build.runner")}
    res["load_average_at_end"] = os.getloadavg()
    res["noop_profile"] = profile_call(lambda: Project.load(kto_root).run())

    res["timings"] = {k: stats(v) for k, v in timings.items()}
    res["ratios"], res["targets"] = ratios(res["timings"])
    res["ratios_best_of_n"], res["targets_best_of_n"] = ratios(res["timings"], "min")
    res["ratios_paired"] = paired_ratios(timings)
    res["total_seconds"] = round(time.perf_counter() - t_all, 1)
    write_results(Path(args.out), res)
    print(table(res))
    log(f"wrote {args.out} ({res['total_seconds']} s)")
    return 0


def write_results(out: Path, res: dict) -> None:
    """One file for every size measured: {"runs": {"<prompts>": result}}; this run replaces its size's entry."""
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"runs": {}}
    with contextlib.suppress(OSError, ValueError):
        doc = json.loads(out.read_text())
        if "runs" not in doc:
            doc = {"runs": {}}
    doc["runs"][str(res["prompts"])] = res
    doc["runs"] = dict(sorted(doc["runs"].items(), key=lambda kv: int(kv[0])))
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n")


def same_tables(ref_db: Path, others: list[Path], names: list[str]) -> dict:
    """Per model table: row count and an order-independent content hash, doubles rounded to 9 places
    (DuckDB's parallel sums/averages may differ in the last bits between runs)."""
    import duckdb

    def digest(db: Path) -> dict:
        con = duckdb.connect(str(db), read_only=True)
        try:
            out = {}
            for t in names:
                cols = con.execute(f'DESCRIBE "{t}"').fetchall()
                exprs = [f'round("{c}", 9)' if ty in ("DOUBLE", "FLOAT") else f'"{c}"' for c, ty, *_ in cols]
                out[t] = con.execute(f'SELECT count(*), sum(hash(row({", ".join(exprs)}))) FROM "{t}"').fetchone()
            return out
        finally:
            con.close()

    ref = digest(ref_db)
    result: dict = {"rows": {t: ref[t][0] for t in names}}
    for o in others:
        d = digest(o)
        label = o.parent.parent.name if o.name == "bench.duckdb" else o.stem
        result[label] = {"identical": d == ref, "differing_tables": [t for t in names if d[t] != ref[t]]}
    return result


def paired_ratios(timings: dict[str, list[float]]) -> dict:
    """The cold build's ratios run by run (kto-build's i-th run over bare DuckDB's i-th, timed back to back),
    then their median: on a VM whose speed drifts over minutes (CPU steal) a ratio of medians mixes fast and
    slow minutes, a paired ratio does not."""
    def paired(a: str, b: str) -> dict | None:
        xs, ys = timings.get(a), timings.get(b)
        if not xs or not ys:
            return None
        rs = [x / y for x, y in zip(xs, ys, strict=True)]
        return {"median": round(statistics.median(rs), 3), "runs": [round(r, 3) for r in rs]}

    return {"cold_kto_cli_over_bare_subprocess": paired("cold.kto_build_cli", "cold.bare_duckdb_subprocess"),
            "cold_kto_cli_fresh_db_over_bare_subprocess": paired("cold.kto_build_cli_fresh_db",
                                                                 "cold.bare_duckdb_subprocess"),
            "cold_kto_inprocess_over_bare_inprocess": paired("cold.kto_build_inprocess",
                                                             "cold.bare_duckdb_inprocess")}


def ratios(t: dict, stat: str = "median") -> tuple[dict, dict]:
    def m(k):
        return t[k][stat] if k in t else None

    def r(a, b):
        return round(m(a) / m(b), 3) if m(a) and m(b) else None

    rat = {
        "cold_kto_cli_over_bare_subprocess": r("cold.kto_build_cli", "cold.bare_duckdb_subprocess"),
        "cold_kto_inprocess_over_bare_inprocess": r("cold.kto_build_inprocess", "cold.bare_duckdb_inprocess"),
        "cold_kto_cli_fresh_db_over_bare_subprocess": r("cold.kto_build_cli_fresh_db", "cold.bare_duckdb_subprocess"),
        "cold_dbt_over_kto_cli": r("cold.dbt_run", "cold.kto_build_cli"),
        "noop_dbt_run_over_kto_cli": r("noop.dbt_run", "noop.kto_build_cli"),
        "noop_dbt_state_modified_over_kto_cli": r("noop.dbt_run_state_modified", "noop.kto_build_cli"),
        "leaf_dbt_select_over_kto_cli": r("leaf.dbt_run_select", "leaf.kto_build_cli"),
        "leaf_dbt_all_over_kto_cli": r("leaf.dbt_run_all", "leaf.kto_build_cli"),
        "wide_dbt_parse_full_over_kto_plan": r("wide.dbt_parse_full", "wide.kto_build_plan_built"),
        "wide_dbt_parse_partial_over_kto_plan": r("wide.dbt_parse_partial", "wide.kto_build_plan_built"),
        "wide_dbt_ls_over_kto_ls": r("wide.dbt_ls", "wide.kto_build_ls_built"),
    }
    tg = {
        "noop at least 10x faster than dbt run": _met(rat["noop_dbt_run_over_kto_cli"], ">=", 10),
        "cold build within 1.15x of bare DuckDB (CLI vs script)": _met(rat["cold_kto_cli_over_bare_subprocess"],
                                                                      "<=", 1.15),
        "cold build within 1.15x of bare DuckDB (in-process)": _met(rat["cold_kto_inprocess_over_bare_inprocess"],
                                                                   "<=", 1.15),
        "wide plan at least 10x faster than dbt parse (full)": _met(rat["wide_dbt_parse_full_over_kto_plan"], ">=",
                                                                    10),
        "wide plan at least 10x faster than dbt parse (partial)": _met(
            rat["wide_dbt_parse_partial_over_kto_plan"], ">=", 10),
    }
    return rat, tg


def _met(v, op, x):
    if v is None:
        return {"value": None, "met": None}
    return {"value": v, "met": v >= x if op == ">=" else v <= x}


def table(res: dict) -> str:
    t = res["timings"]

    def s(k):
        return f"{t[k]['median']:.3f}" if k in t else "—"

    rows = [
        ("cold build", "kto-build run", s("cold.kto_build_cli"), "dbt run", s("cold.dbt_run"),
         "bare DuckDB script", s("cold.bare_duckdb_subprocess")),
        ("cold build, in-process", "Project.run()", s("cold.kto_build_inprocess"), "", "",
         "bare DuckDB, same process", s("cold.bare_duckdb_inprocess")),
        ("cold build, fresh db (parse cache kept)", "kto-build run", s("cold.kto_build_cli_fresh_db"), "", "",
         "bare DuckDB script", s("cold.bare_duckdb_subprocess")),
        ("no-op run", "kto-build run", s("noop.kto_build_cli"), "dbt run", s("noop.dbt_run"),
         "dbt run -s state:modified+", s("noop.dbt_run_state_modified")),
        ("one-leaf edit", "kto-build run", s("leaf.kto_build_cli"), "dbt run -s leaf", s("leaf.dbt_run_select"),
         "dbt run (all)", s("leaf.dbt_run_all")),
        (f"wide ({res.get('wide_n', 500)} models), no db", "kto-build plan", s("wide.kto_build_plan_nodb"),
         "dbt parse (full)", s("wide.dbt_parse_full"), "kto-build ls", s("wide.kto_build_ls_nodb")),
        ("wide, built", "kto-build plan", s("wide.kto_build_plan_built"), "dbt parse (partial)",
         s("wide.dbt_parse_partial"), "dbt ls", s("wide.dbt_ls")),
        ("wide, built", "kto-build ls", s("wide.kto_build_ls_built"), "", "", "kto-build run (no-op)",
         s("wide.kto_build_run_noop")),
    ]
    lines = ["| scenario | kto-build | s | peer | s | other | s |", "|---|---|--:|---|--:|---|--:|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines.append("")
    lines.append("| ratio | value |")
    lines.append("|---|--:|")
    lines += [f"| {k} | {v} |" for k, v in res["ratios"].items()]
    lines.append("")
    lines.append("| target | ratio (medians) | met | ratio (best of n) | met |")
    lines.append("|---|--:|---|--:|---|")
    lines += [f"| {k} | {v['value']} | {v['met']} | {res['targets_best_of_n'][k]['value']} | "
              f"{res['targets_best_of_n'][k]['met']} |" for k, v in res["targets"].items()]
    for k, v in (res.get("ratios_paired") or {}).items():
        if v:
            lines.append(f"paired run by run, {k}: median {v['median']} of {v['runs']}")
    rc = res["reference_check"]
    lines.append("")
    for name in ("kto", "dpo"):
        c = rc[name]
        lines.append(f"reference check {name}: {c['matched']}/{c['reference_rows']} reference rows matched, "
                     f"{c['only_in_reference']} only in reference, {c['only_in_built']} only in kto-build "
                     f"({'EQUAL' if c['equal'] else 'MISMATCH'})")
    return "\n".join(lines)


SUMMARY_ROWS = [
    ("cold build (CLI)", "cold.kto_build_cli", "bare DuckDB script", "cold.bare_duckdb_subprocess", "<= 1.15"),
    ("cold build (CLI), fresh db, parse cache kept", "cold.kto_build_cli_fresh_db", "bare DuckDB script",
     "cold.bare_duckdb_subprocess", ""),
    ("cold build (in-process)", "cold.kto_build_inprocess", "bare DuckDB in-process", "cold.bare_duckdb_inprocess",
     "<= 1.15"),
    ("cold build", "cold.kto_build_cli", "dbt run", "cold.dbt_run", ""),
    ("no-op run", "noop.kto_build_cli", "dbt run", "noop.dbt_run", ">= 10"),
    ("no-op run", "noop.kto_build_cli", "dbt run -s state:modified+", "noop.dbt_run_state_modified", ""),
    ("one-leaf edit", "leaf.kto_build_cli", "dbt run -s model_leaderboard", "leaf.dbt_run_select", ""),
    ("one-leaf edit", "leaf.kto_build_cli", "dbt run", "leaf.dbt_run_all", ""),
    ("wide 500: plan (built db)", "wide.kto_build_plan_built", "dbt parse (full)", "wide.dbt_parse_full", ">= 10"),
    ("wide 500: plan (built db)", "wide.kto_build_plan_built", "dbt parse (partial-parse cache warm)",
     "wide.dbt_parse_partial", ""),
    ("wide 500: plan (no db)", "wide.kto_build_plan_nodb", "dbt parse (full)", "wide.dbt_parse_full", ""),
    ("wide 500: ls (built db)", "wide.kto_build_ls_built", "dbt ls", "wide.dbt_ls", ""),
]


def summary(doc: dict) -> str:
    """One markdown table over every size in engine.json: median seconds, peer/kto-build ratio (x: kto-build is
    x times faster; for the bare DuckDB rows, kto-build/bare: the overhead)."""
    sizes = list(doc["runs"])
    head = "| scenario | kto-build | peer | target | " + " | ".join(f"{int(n):,} prompts" for n in sizes) + " |"
    lines = [head, "|---|---|---|---|" + "---|" * len(sizes)]
    for label, k, peer, pk, target in SUMMARY_ROWS:
        cells = []
        for n in sizes:
            t = doc["runs"][n]["timings"]
            if k not in t or pk not in t:
                cells.append("—")
                continue
            a, b = t[k]["median"], t[pk]["median"]
            if pk.startswith("cold.bare"):
                cells.append(f"{a:.2f} s vs {b:.2f} s = **{a / b:.2f}x**")
            else:
                cells.append(f"{a:.2f} s vs {b:.2f} s = **{b / a:.1f}x**")
        kto = "kto-build " + ("run" if "run" in k or "cold" in k or "noop" in k or "leaf" in k else
                              "plan" if "plan" in k else "ls")
        if "inprocess" in k:
            kto = "Project.load().run()"
        lines.append(f"| {label} | {kto} | {peer} | {target} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
