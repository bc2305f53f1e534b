"""The engine benchmark's parts at a tiny size: workload generator, project builders, reference check.

kto-build and bare DuckDB only (no dbt here): the bench itself is
``bench/bench_engine.py``; see docs/bench-engine.md.
"""

from __future__ import annotations

import duckdb
import pytest

from bench.engine import projects as P
from bench.engine import reference as R
from bench.engine import workload as W
from kto_build.project import Project

N = 200


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    counts = W.generate(root / "data", N, seed=1)
    wl = P.Workload(root / "data", P.load_models())
    kto_root = wl.write_kto(root / "kto")
    results = Project.load(kto_root).run()
    P.run_bare(root / "bare.duckdb", wl.bare_statements())
    return {"root": root, "counts": counts, "wl": wl, "kto_root": kto_root, "results": results,
            "db": kto_root / "target" / "bench.duckdb"}


def test_workload_is_deterministic_and_has_the_edge_cases(built, tmp_path):
    data = built["root"] / "data"
    assert built["counts"]["prompts"] == N
    again = W.generate(tmp_path, N, seed=1)
    assert {k: v for k, v in again.items() if k != "seconds"} == \
        {k: v for k, v in built["counts"].items() if k != "seconds"}
    con = duckdb.connect()
    for f in ("prompts", "generations", "ratings"):
        a = con.execute(f"SELECT count(*), sum(hash(t)) FROM '{data}/{f}.parquet' t").fetchone()
        b = con.execute(f"SELECT count(*), sum(hash(t)) FROM '{tmp_path}/{f}.parquet' t").fetchone()
        assert a == b, f
    statuses = dict(con.execute(f"SELECT status, count(*) FROM '{data}/ratings.parquet' GROUP BY ALL").fetchall())
    assert set(statuses) == {"submitted", "draft", "discarded"}
    questions = {r[0] for r in con.execute(f"SELECT DISTINCT question FROM '{data}/ratings.parquet'").fetchall()}
    assert questions == {W.QUESTION, W.OTHER_QUESTION}
    # changed answers: some (record, annotator) pairs have both a Yes and a No submitted
    changed = con.execute(f"""SELECT count(*) FROM (SELECT record_id, annotator_id FROM '{data}/ratings.parquet'
                              WHERE question = 'label' AND status = 'submitted' GROUP BY ALL
                              HAVING count(DISTINCT value) = 2)""").fetchone()[0]
    assert changed > 0
    gen_status = dict(con.execute(f"SELECT status, count(*) FROM '{data}/generations.parquet' GROUP BY ALL").fetchall())
    assert set(gen_status) == {"ok", "failed"}


def test_kto_build_builds_every_node_and_matches_bare_duckdb(built):
    res = built["results"]
    assert res.ok, res.nodes
    assert {n["status"] for n in res.nodes} == {"built"}
    assert {n["name"] for n in res.nodes} == set(P.SOURCES) | set(built["wl"].models.sql)
    con_a = duckdb.connect(str(built["db"]), read_only=True)
    con_b = duckdb.connect(str(built["root"] / "bare.duckdb"), read_only=True)
    for name in built["wl"].models.sql:
        q = f'SELECT count(*), sum(hash(t)) FROM "{name}" t'
        assert con_a.execute(q).fetchone() == con_b.execute(q).fetchone(), name


def test_reference_matches_kto_and_dpo_exactly(built):
    check = R.compare(built["db"], built["root"] / "data", built["wl"].models.vars)
    for name in ("kto", "dpo"):
        c = check[name]
        assert c["equal"], (name, c)
        assert c["reference_rows"] > 0, name


def test_reference_notices_a_rule_change(built):
    """The check can fail: the reference under other vars differs from the built tables."""
    other = {**built["wl"].models.vars, "min_agreement": 0.5, "dpo_min_margin": 0.0}
    check = R.compare(built["db"], built["root"] / "data", other)
    assert not check["kto"]["equal"]
    assert not check["dpo"]["equal"]


def test_noop_and_leaf_edit(built):
    root = built["kto_root"]
    assert {n["status"] for n in Project.load(root).run().nodes} == {"skipped"}
    leaf = root / "models" / "model_leaderboard.sql"
    orig = leaf.read_text()
    try:
        leaf.write_text(f"select *, 1 as bench_edit from (\n{orig.rstrip().rstrip(';')}\n) as e\n")
        res = Project.load(root).run()
        assert [n["name"] for n in res.nodes if n["status"] == "built"] == ["model_leaderboard"]
    finally:
        leaf.write_text(orig)


def test_dbt_rewrite_touches_only_table_references():
    sql = ("with label_votes_2 as (select * from label_votes)\n"
           "select * from label_votes_2 join \"stg_prompts\" p using (prompt_id), read_parquet('x.parquet')")
    out = P.rewrite_refs(sql, {"label_votes", "stg_prompts"})
    assert out == ("with label_votes_2 as (select * from {{ ref('label_votes') }})\n"
                   "select * from label_votes_2 join {{ ref('stg_prompts') }} p using (prompt_id), "
                   "read_parquet('x.parquet')")


def test_wide_project_loads(tmp_path):
    P.write_wide(tmp_path / "k", tmp_path / "d", tmp_path / "data", n=40)
    plan = Project.load(tmp_path / "k").plan()
    assert len(plan.items) == 41
    assert all(i.action == "build" for i in plan.items)
    assert len(list((tmp_path / "d" / "models").glob("*.sql"))) == 41
