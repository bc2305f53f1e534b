"""A no-op run decides from target/<db>.snapshot.json and opens no DuckDB file; any change is still seen.

The probe is ``kto_build.state.OPENS``, counted in the one function that calls ``duckdb.connect`` (the runs
here are in-process, through click's CliRunner), so "opened nothing" is a fact about this process.
"""

from __future__ import annotations

import json

import duckdb

from kto_build import snapshot, state


def run_counting(proj, *args) -> tuple[dict, int]:
    before = state.OPENS
    res = proj.run(*args)
    return res, state.OPENS - before


def snap_file(proj):
    return proj.root / "target" / "kto_build.duckdb.snapshot.json"


def test_noop_run_opens_no_database_and_says_the_same(proj):
    first = proj.run()
    assert first["exit_code"] == 0 and snap_file(proj).exists()
    slow_noop, opened = run_counting(proj)  # the snapshot written by a building run is valid
    assert opened == 0
    snap_file(proj).unlink()
    fallback, opened = run_counting(proj)  # no snapshot: the database is read, the answer is the same
    assert opened > 0
    strip = [{k: v for k, v in n.items() if k != "seconds"} for n in fallback["nodes"]]
    assert [{k: v for k, v in n.items() if k != "seconds"} for n in slow_noop["nodes"]] == strip
    assert all(n["status"] == "skipped" and n["message"] == "up to date" for n in fallback["nodes"])
    assert {n["name"]: n["rows"] for n in fallback["nodes"]}["stg_prompts"] == 2
    assert fallback["success"] is True
    again, opened = run_counting(proj)  # the fallback run wrote the snapshot again
    assert opened == 0 and proj.statuses(again) == proj.statuses(fallback)


def test_plan_and_ls_use_the_snapshot(proj):
    proj.run()
    before = state.OPENS
    assert "0 of 4 nodes would rebuild" in proj.cli("plan").output
    assert "stale" not in proj.cli("ls").output
    assert state.OPENS == before


def test_second_connection_dropping_a_table_is_seen(proj):
    proj.run()
    con = duckdb.connect(str(proj.root / "target" / "kto_build.duckdb"))  # a real second writer
    con.execute("DROP TABLE prompt_stats")
    con.close()
    res, opened = run_counting(proj)
    assert opened > 0
    assert proj.built(res) == {"prompt_stats"}
    assert {n["reason"] for n in res["nodes"] if n["status"] == "built"} == {"table missing"}


def test_second_connection_changing_state_rows_is_seen(proj):
    """A write that keeps the tables but changes a state row: only the database knows, the snapshot's file
    key does not match, so the run reads the row (a changed fingerprint: rebuild)."""
    proj.run()
    con = duckdb.connect(str(proj.root / "target" / "kto_build.duckdb"))
    con.execute("UPDATE _kto_build.nodes SET fingerprint = 'x' WHERE name = 'shouty'")
    con.close()
    res, _ = run_counting(proj)
    assert proj.built(res) == {"shouty"}


def test_prompt_file_model_and_vars_edits_are_seen_with_a_valid_snapshot(proj):
    proj.run()
    db = proj.root / "target" / "kto_build.duckdb"
    assert snapshot.load(db) is not None
    with open(proj.root / "data" / "prompts.jsonl", "a") as fh:  # a new prompt
        fh.write(json.dumps({"instructions": "Write a haiku about fog.", "topic": "fog"}) + "\n")
    assert snapshot.load(db) is not None  # still valid: the decision reads the input file itself
    res = proj.run()
    assert proj.built(res) == {"raw_prompts", "stg_prompts", "prompt_stats", "shouty"}
    assert proj.built(proj.run()) == set()
    proj.write("models/prompt_stats.sql", "select count(*) as n from stg_prompts\n")
    assert proj.built(proj.run()) == {"prompt_stats"}
    res, opened = run_counting(proj, "--vars", "{suffix: '?'}")
    assert proj.built(res) == {"shouty"} and opened > 0
    res, opened = run_counting(proj, "--vars", "{suffix: '?'}")
    assert proj.built(res) == set() and opened == 0
    assert proj.built(proj.run()) == {"shouty"}  # back to the project's value: rebuilt again


def test_full_refresh_and_select_after_a_snapshot(proj):
    proj.run()
    assert proj.built(proj.run("--full-refresh")) == {"raw_prompts", "stg_prompts", "prompt_stats", "shouty"}
    res, opened = run_counting(proj, "--select", "shouty")
    assert opened == 0 and proj.statuses(res) == {"shouty": "skipped"}


def test_wal_or_other_file_means_no_snapshot(proj):
    proj.run()
    db = proj.root / "target" / "kto_build.duckdb"
    wal = db.with_name(db.name + ".wal")
    wal.write_bytes(b"")
    try:
        assert snapshot.load(db) is None
    finally:
        wal.unlink()
    assert snapshot.load(db) is not None
    data = json.loads(snap_file(proj).read_text())
    data["key"][0] += 1
    snap_file(proj).write_text(json.dumps(data))
    assert snapshot.load(db) is None
    _, opened = run_counting(proj)
    assert opened > 0


def test_answers_arriving_are_seen(proj, tmp_path):
    proj.write("models/recs.sql", "select prompt_id as id, prompt, prompt || ' (a reply)' as completion "
                                  "from stg_prompts\n")
    with open(proj.root / "sources.yml", "a") as fh:
        fh.write("annotations:\n  ratings:\n    records: recs\n"
                 "    question: {name: label, labels: ['Yes', 'No']}\n")
    proj.run()
    res, opened = run_counting(proj)
    assert opened == 0 and proj.statuses(res)["ratings"] == "skipped"
    ids = [r[0] for r in proj.query("select id from recs order by id")]
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"record_id": str(ids[0]), "annotator": "ada", "value": "Yes"}) + "\n")
    out = proj.cli("annotate", "ratings", "--answers", str(answers))
    assert "1 added to the log" in out.output, out.output
    res = proj.run()
    assert proj.built(res) == {"ratings"}
    assert {n["name"]: n["reason"] for n in res["nodes"]}["ratings"] == "new answers in the log"
    res, opened = run_counting(proj)  # the log version is in the snapshot: no-op without opening the file
    assert opened == 0 and proj.built(res) == set()


def test_noop_run_keeps_manifest_and_writes_run_results(proj):
    """run_results.json says what every invocation did (a new run_id, every node skipped), as dbt's does;
    manifest.json describes the project, so an unchanged project leaves the same file (not rewritten)."""
    first = proj.run()
    manifest = proj.root / "target" / "manifest.json"
    stamp = manifest.stat().st_mtime_ns, manifest.stat().st_ino
    again = proj.run()
    assert again["metadata"]["run_id"] != first["metadata"]["run_id"]
    assert {n["status"] for n in again["nodes"]} == {"skipped"}
    assert (manifest.stat().st_mtime_ns, manifest.stat().st_ino) == stamp
    proj.write("models/prompt_stats.sql", "select count(*) as n from stg_prompts\n")
    proj.run()
    assert (manifest.stat().st_mtime_ns, manifest.stat().st_ino) != stamp
    assert "prompt_stats" in json.loads(manifest.read_text())["nodes"]


def test_change_with_same_stat_is_seen(proj):
    """A file system with coarse mtimes, where another writer's change leaves size, mtime and inode as they
    were (simulated: the snapshot's stat fields are set to the changed file's). DuckDB's headers, rewritten
    at each checkpoint, still tell the file changed."""
    proj.run()
    db = proj.root / "target" / "kto_build.duckdb"
    con = duckdb.connect(str(db))
    con.execute("UPDATE _kto_build.nodes SET fingerprint = 'x' WHERE name = 'shouty'")
    con.close()
    data = json.loads(snap_file(proj).read_text())
    now = snapshot.file_key(db)
    assert now[3] != data["key"][3]  # the headers differ
    data["key"][:3] = now[:3]  # the stat as a coarse file system would leave it
    snap_file(proj).write_text(json.dumps(data))
    assert snapshot.load(db) is None
    assert proj.built(proj.run()) == {"shouty"}
