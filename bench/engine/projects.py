"""Build the same workload as three projects: kto-build, dbt-duckdb, and a bare DuckDB statement list.

All three run the same model SQL text. kto-build gets the files as they are;
dbt gets each file with its table references rewritten to ``{{ ref('x') }}``
at their exact character offsets (found through sqlglot's tokens, so CTE names
and table functions are left alone) and the vars set with ``SET VARIABLE`` in
``on-run-start``; bare DuckDB gets ``CREATE OR REPLACE TABLE x AS <same text>``
in dependency order.

The three input tables are loaded the same way everywhere: a table created
from ``read_parquet`` of the same file, with the same SELECT kto-build's
source node issues (``md5(text) AS prompt_id, text AS prompt, rest`` for the
prompt table, ``*`` for the others). In dbt these are three table models.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import sqlglot
import yaml
from sqlglot import exp

REPO = Path(__file__).resolve().parents[2]
FALLBACK_MODELS = Path(__file__).resolve().parent / "models"
EXAMPLE_MODELS = REPO / "models"
MODEL_NAMES = ("stg_prompts", "stg_generations", "to_annotate", "stg_responses", "label_votes", "kto", "dpo",
               "annotator_stats", "model_leaderboard")
FALLBACK_VARS = {"positive_label": "Yes", "required_lines": 3, "min_annotators": 1, "min_agreement": 1.0,
                 "dpo_min_margin": 0.5}

# the three inputs: node name -> (parquet file, text column or None for a plain table)
SOURCES = {
    "haiku_prompts": ("prompts.parquet", "instructions"),
    "haiku_generations": ("generations.parquet", None),
    "haiku_ratings": ("ratings.parquet", None),
}


def qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class ModelSet:
    """The model SQL the bench measures, and where it came from."""

    origin: str  # "example" (repo models/) or "fallback" (bench/engine/models)
    sql: dict[str, str]  # name -> file text
    vars: dict
    docs: dict[str, str] = field(default_factory=dict)  # models/*.yml text (read by the reference check)
    extra_sources: dict[str, str] = field(default_factory=dict)


def example_vars() -> dict:
    cfg = yaml.safe_load((REPO / "project.yml").read_text()) or {}
    return dict(cfg.get("vars") or {})


#: the example's judge node (sources.yml) as a model with its table's columns and no rows: the bench's
#: workload has no judge, so labels are people's only (label_source human_else_judge falls back to them)
JUDGE_STANDIN_SQL = ("-- no judge in this project: no verdicts\nselect " + ", ".join(
    f"null::{t} as {c}" for c, t in (
        ("record_id", "varchar"), ("judge_model", "varchar"), ("label", "varchar"), ("score", "double"),
        ("rationale", "varchar"), ("raw", "varchar"), ("status", "varchar"), ("error", "varchar"),
        ("created_at", "timestamp"), ("worker", "varchar"))) + " where false\n")


def load_models(prefer: str = "auto") -> ModelSet:
    """The example's models/*.sql when all of them exist (the bench measures the current example), else ours."""
    have = {p.stem for p in EXAMPLE_MODELS.glob("*.sql")} if EXAMPLE_MODELS.is_dir() else set()
    use_example = prefer == "example" or (prefer == "auto" and set(MODEL_NAMES) <= have)
    if use_example:
        sql = {p.stem: p.read_text() for p in sorted(EXAMPLE_MODELS.glob("*.sql"))}
        if any("haiku_judge" in text for text in sql.values()):
            sql["haiku_judge"] = JUDGE_STANDIN_SQL
        docs = {p.name: p.read_text() for p in sorted(EXAMPLE_MODELS.glob("*.y*ml"))}
        return ModelSet("example", sql, {**FALLBACK_VARS, **example_vars()}, docs)
    sql = {p.stem: p.read_text() for p in sorted(FALLBACK_MODELS.glob("*.sql"))}
    return ModelSet("fallback", sql, dict(FALLBACK_VARS))


# ------------------------------------------------------------------ SQL helpers
def table_refs(sql: str, known: set[str]) -> list[tuple[int, int, str]]:
    """(start, end, name) of every reference to a known node: tables minus CTE names and functions."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    out = []
    for t in tree.find_all(exp.Table):
        ident = t.this
        if not isinstance(ident, exp.Identifier) or t.db or t.catalog:
            continue
        name = ident.name.lower()
        if name in ctes or name not in known:
            continue
        m = ident.meta
        start, end = m["start"], m["end"] + 1  # quotes included for a quoted name
        out.append((start, end, name))
    return sorted(out)


def rewrite_refs(sql: str, known: set[str], fmt: str = "{{{{ ref('{name}') }}}}") -> str:
    out, pos = [], 0
    for start, end, name in table_refs(sql, known):
        out.append(sql[pos:start])
        out.append(fmt.format(name=name))
        pos = end
    out.append(sql[pos:])
    return "".join(out)


def toposort(deps: dict[str, set[str]]) -> list[str]:
    order, done = [], set()

    def visit(n, stack=()):
        if n in done:
            return
        if n in stack:
            raise ValueError(f"cycle through {n}")
        for d in sorted(deps.get(n, ())):
            visit(d, (*stack, n))
        done.add(n)
        order.append(n)

    for n in sorted(deps):
        visit(n)
    return order


def source_select(path: Path, text: str | None) -> str:
    """The SELECT kto-build's source node issues for this file (kto_build/nodes/source.py)."""
    rel = f"read_parquet('{path}')"
    if text is None:
        return f"SELECT * FROM {rel}"
    cols = [r[0] for r in duckdb.sql(f"DESCRIBE SELECT * FROM {rel}").fetchall()]
    rest = "".join(", " + qi(c) for c in cols if c not in (text, "prompt_id", "prompt"))
    return (f"SELECT md5(CAST({qi(text)} AS VARCHAR)) AS prompt_id, CAST({qi(text)} AS VARCHAR) AS prompt{rest} "
            f"FROM {rel}")


def sql_literal(v) -> str:
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, float)):
        return repr(v)
    return "'" + str(v).replace("'", "''") + "'"


def set_variable_statements(variables: dict) -> list[str]:
    return [f"SET VARIABLE {k} = {sql_literal(v)}" for k, v in variables.items()]


# ------------------------------------------------------------- the workload
@dataclass
class Workload:
    data_dir: Path
    models: ModelSet
    sources: dict[str, tuple[str, str | None]] = field(default_factory=lambda: dict(SOURCES))

    def source_sql(self) -> dict[str, str]:
        return {n: source_select(self.data_dir / f, text) for n, (f, text) in self.sources.items()}

    def deps(self) -> dict[str, set[str]]:
        known = set(self.sources) | set(self.models.sql)
        d: dict[str, set[str]] = {n: set() for n in self.sources}
        for name, sql in self.models.sql.items():
            d[name] = {r[2] for r in table_refs(sql, known)}
        return d

    def order(self) -> list[str]:
        return toposort(self.deps())

    # ------------------------------------------------------------ kto-build
    def write_kto(self, root: Path) -> Path:
        if root.exists():
            shutil.rmtree(root)
        (root / "models").mkdir(parents=True)
        (root / "project.yml").write_text(yaml.safe_dump({
            "name": "bench_engine", "database": "target/bench.duckdb", "vars": self.models.vars,
            "models": {"materialized": "table"}}, sort_keys=False))
        prompts = {}
        for n, (f, text) in self.sources.items():
            entry = {"path": str(self.data_dir / f)}
            if text:
                entry["text"] = text
            prompts[n] = entry
        (root / "sources.yml").write_text(yaml.safe_dump({"prompts": prompts}, sort_keys=False))
        for name, sql in self.models.sql.items():
            (root / "models" / f"{name}.sql").write_text(sql)
        return root

    # ------------------------------------------------------------------ dbt
    def write_dbt(self, root: Path, threads: int = 1) -> Path:
        if root.exists():
            shutil.rmtree(root)
        (root / "models").mkdir(parents=True)
        (root / "dbt_project.yml").write_text(yaml.safe_dump({
            "name": "bench_engine", "version": "1.0.0", "config-version": 2, "profile": "bench_engine",
            "model-paths": ["models"], "target-path": "target",
            # on-run-start alone is not enough: dbt-duckdb runs each model on its own cursor (a DuckDB
            # connection of its own), and SET VARIABLE is per connection, so each model also sets the
            # vars in a pre-hook (same connection as its CREATE). Five tiny statements per model.
            "on-run-start": set_variable_statements(self.models.vars),
            "models": {"bench_engine": {"+materialized": "table",
                                        "+pre-hook": set_variable_statements(self.models.vars)}}},
            sort_keys=False))
        (root / "profiles.yml").write_text(yaml.safe_dump({"bench_engine": {"target": "dev", "outputs": {"dev": {
            "type": "duckdb", "path": str(root / "target" / "bench.duckdb"), "threads": threads}}}}))
        for name, sql in self.source_sql().items():
            (root / "models" / f"{name}.sql").write_text(sql + "\n")
        known = set(self.sources) | set(self.models.sql)
        for name, sql in self.models.sql.items():
            (root / "models" / f"{name}.sql").write_text(rewrite_refs(sql, known))
        return root

    # ------------------------------------------------------------- bare DuckDB
    def bare_statements(self) -> list[str]:
        src = self.source_sql()
        stmts = set_variable_statements(self.models.vars)
        for name in self.order():
            body = src[name] if name in src else self.models.sql[name].rstrip().rstrip(";")
            stmts.append(f"CREATE OR REPLACE TABLE {qi(name)} AS\n{body}")
        return stmts

    def write_bare(self, path: Path) -> Path:
        path.write_text(json.dumps(self.bare_statements(), indent=1))
        return path


def run_bare(db_path: Path, statements: list[str]) -> None:
    """Execute the statements in order on a fresh file, one connection (the bare DuckDB peer)."""
    for p in (db_path, db_path.with_name(db_path.name + ".wal")):
        p.unlink(missing_ok=True)
    con = duckdb.connect(str(db_path))
    for s in statements:
        con.execute(s)
    con.close()


# ------------------------------------------------------------ the wide project
def wide_models(n: int = 500, seed: int = 0) -> dict[str, str]:
    """n small models in a DAG: each reads 1-3 earlier ones (or the seed table) and joins them on id."""
    import random

    rnd = random.Random(seed)
    out = {}
    for i in range(n):
        name = f"m_{i:03d}"
        if i < 10:
            parents = ["wide_src"]
        else:
            k = rnd.choice((1, 2, 2, 3))
            lo = max(0, i - 60)
            parents = sorted({f"m_{rnd.randrange(lo, i):03d}" for _ in range(k)})
        cols = " + ".join(f"p{j}.v" for j in range(len(parents)))
        joins = f"from {parents[0]} p0\n" + "".join(
            f"join {p} p{j} on p{j}.id = p0.id\n" for j, p in enumerate(parents[1:], 1))
        out[name] = (f"-- wide model {i}\nwith base as (\n  select p0.id, {cols} as v, '{name}' as tag\n  {joins})\n"
                     f"select id, v % 1000 as v, tag from base where v >= 0\n")
    return out


def write_wide(kto_root: Path, dbt_root: Path, data_dir: Path, n: int = 500) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    src = data_dir / "wide_src.parquet"
    duckdb.sql(f"COPY (SELECT range AS id, range * 7 % 101 AS v FROM range(100)) TO '{src}' (FORMAT parquet)")
    models = wide_models(n)
    for root in (kto_root, dbt_root):
        if root.exists():
            shutil.rmtree(root)
        (root / "models").mkdir(parents=True)
    (kto_root / "project.yml").write_text(yaml.safe_dump({"name": "wide", "database": "target/wide.duckdb",
                                                           "models": {"materialized": "table"}}))
    (kto_root / "sources.yml").write_text(yaml.safe_dump({"prompts": {"wide_src": {"path": str(src)}}}))
    for name, sql in models.items():
        (kto_root / "models" / f"{name}.sql").write_text(sql)
    (dbt_root / "dbt_project.yml").write_text(yaml.safe_dump({
        "name": "wide", "version": "1.0.0", "config-version": 2, "profile": "wide", "model-paths": ["models"],
        "target-path": "target", "models": {"wide": {"+materialized": "table"}}}))
    (dbt_root / "profiles.yml").write_text(yaml.safe_dump({"wide": {"target": "dev", "outputs": {"dev": {
        "type": "duckdb", "path": str(dbt_root / "target" / "wide.duckdb"), "threads": 1}}}}))
    (dbt_root / "models" / "wide_src.sql").write_text(f"SELECT * FROM read_parquet('{src}')\n")
    known = set(models) | {"wide_src"}
    for name, sql in models.items():
        (dbt_root / "models" / f"{name}.sql").write_text(rewrite_refs(sql, known))
