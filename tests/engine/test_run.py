"""Incremental runs: what rebuilds, what is skipped, and why."""

from __future__ import annotations

import json
import os


def test_cold_then_noop(proj):
    r1 = proj.run()
    assert r1["exit_code"] == 0, r1["output"]
    assert proj.statuses(r1) == {"raw_prompts": "built", "stg_prompts": "built", "prompt_stats": "built",
                                 "shouty": "built"}
    assert proj.query("select n from prompt_stats") == [(2,)]
    assert proj.query("select table_type from information_schema.tables where table_name='shouty'") == [("VIEW",)]
    r2 = proj.run()
    assert r2["exit_code"] == 0
    assert set(proj.statuses(r2).values()) == {"skipped"}


def test_run_results_shape(proj):
    r = proj.run()
    for n in r["nodes"]:
        assert {"name", "kind", "status", "seconds", "rows"} <= set(n)
        assert n["status"] in ("built", "skipped", "failed")
    assert next(n for n in r["nodes"] if n["name"] == "stg_prompts")["rows"] == 2
    manifest = json.loads((proj.root / "target" / "manifest.json").read_text())
    assert set(manifest["nodes"]) == {"raw_prompts", "stg_prompts", "prompt_stats", "shouty"}
    assert ["stg_prompts", "shouty"] in manifest["edges"]
    assert manifest["nodes"]["stg_prompts"]["vars"] == ["min_len"]


def test_leaf_edit_rebuilds_only_leaf(proj):
    proj.run()
    proj.write("models/prompt_stats.sql", "select count(*) as n, min(length(prompt)) as shortest from stg_prompts")
    r = proj.run()
    assert proj.built(r) == {"prompt_stats"}
    assert proj.query("select * from prompt_stats") == [(2, 25)]


def test_staging_edit_rebuilds_descendants(proj):
    proj.run()
    proj.write("models/stg_prompts.sql", """
        select min(prompt_id) as prompt_id, lower(trim(prompt)) as prompt
        from raw_prompts where length(trim(prompt)) >= getvariable('min_len') group by 2
    """)
    r = proj.run()
    assert proj.built(r) == {"stg_prompts", "prompt_stats", "shouty"}


def test_reformatting_and_comments_do_not_rebuild(proj):
    proj.run()
    proj.write("models/stg_prompts.sql", """
        /* the same query, laid out differently */
        SELECT   min(prompt_id)   AS prompt_id,
                 trim(prompt) AS prompt          -- trimmed
        FROM raw_prompts
        WHERE length(trim(prompt)) >= getvariable('min_len')
        GROUP BY trim(prompt)
    """)
    r = proj.run()
    assert proj.built(r) == set()


def test_var_change_rebuilds_only_readers(proj):
    proj.run()
    r = proj.run("--vars", "{suffix: '?'}")
    assert proj.built(r) == {"shouty"}
    assert proj.query("select prompt from shouty order by 1 limit 1") == [("WRITE A HAIKU ABOUT RAIN.?",)]
    text = (proj.root / "project.yml").read_text().replace("min_len: 3", "min_len: 26")
    (proj.root / "project.yml").write_text(text)
    r = proj.run("--vars", "{suffix: '?'}")
    assert proj.built(r) == {"stg_prompts", "prompt_stats", "shouty"}
    assert proj.query("select n from prompt_stats") == [(0,)]


def test_source_content_change_and_touch(proj):
    proj.run()
    f = proj.root / "data" / "prompts.jsonl"
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000_000))  # touched, same bytes
    assert proj.built(proj.run()) == set()
    with f.open("a") as fh:
        fh.write(json.dumps({"instructions": "Write a haiku about wind.", "topic": "wind"}) + "\n")
    r = proj.run()
    assert proj.built(r) == {"raw_prompts", "stg_prompts", "prompt_stats", "shouty"}
    assert proj.query("select n from prompt_stats") == [(3,)]


def test_unchanged_upstream_rebuild_does_not_cascade_on_noop(proj):
    proj.run()
    r = proj.run("--select", "stg_prompts", "--full-refresh")
    assert proj.built(r) == {"stg_prompts"}
    # a full refresh of stg_prompts produced the same version: nothing downstream is stale
    assert proj.built(proj.run()) == set()


def test_full_refresh_rebuilds_models(proj):
    proj.run()
    r = proj.run("--full-refresh")
    assert proj.built(r) == {"raw_prompts", "stg_prompts", "prompt_stats", "shouty"}


def test_dropped_table_is_rebuilt(proj):
    proj.run()
    import duckdb

    con = duckdb.connect(str(proj.root / "target" / "kto_build.duckdb"))
    con.execute("drop table prompt_stats")
    con.close()
    r = proj.run()
    assert proj.built(r) == {"prompt_stats"}
    assert next(n for n in r["nodes"] if n["name"] == "prompt_stats")["reason"] == "table missing"


def test_materialization_change(proj):
    proj.run()
    proj.write("models/schema.yml", """
        models:
          - name: shouty
            materialized: table
    """)
    r = proj.run()
    assert proj.built(r) == {"shouty"}
    assert proj.query("select table_type from information_schema.tables where table_name='shouty'") == [
        ("BASE TABLE",)]


def test_plan_explains_and_runs_nothing(proj):
    proj.run()
    proj.write("models/stg_prompts.sql", "select prompt_id, prompt from raw_prompts")
    res = proj.cli("plan")
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert any(line.split()[:4] == ["build", "model", "stg_prompts", "definition"] for line in lines), res.output
    assert any("shouty" in line and "upstream 'stg_prompts' will rebuild" in line for line in lines)
    assert any(line.split()[:3] == ["skip", "source", "raw_prompts"] for line in lines)
    assert "3 of 4 nodes would rebuild" in res.output
    # nothing ran: the old table is still there
    assert proj.query("select count(*) from stg_prompts") == [(2,)]
