"""The local backend: answers files, pending exports, staleness, errors (no server needed)."""

from __future__ import annotations

import json

import duckdb

from .conftest import kto


def q(root, sql):
    con = duckdb.connect(str(root / "target/kto_build.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def write_answers(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_answers_file_appends_changes_only_and_downstream_follows(project_factory, tmp_path):
    root = project_factory(n=5)
    r = kto(root, "run")
    assert "5 records wait for answers" in r.stdout
    assert q(root, "select count(*) from haiku_ratings") == [(0,)]

    pending = tmp_path / "pending.jsonl"
    r = kto(root, "annotate", "--export-pending", str(pending))
    assert "wrote 5 pending records" in r.stdout
    first = json.loads(pending.read_text().splitlines()[0])
    assert first["record_id"] == "g00000" and first["prompt"].startswith("Write a haiku")
    assert first["model_name"] == "qwen" and first["annotator"] is None and first["value"] is None

    # the exported file, filled in, imports as it is (extra keys are ignored)
    filled = [{**json.loads(line), "annotator": "Ada", "value": "Yes"} for line in pending.read_text().splitlines()]
    write_answers(tmp_path / "a.jsonl", [*filled[:2], {"record_id": "g00000", "annotator": "bob", "value": "No"},
                                         {"record_id": "g00002", "annotator": "bob", "value": None,
                                          "status": "discarded"}])
    r = kto(root, "annotate", "haiku_ratings", "--answers", str(tmp_path / "a.jsonl"))
    assert "4 added to the log, 0 unchanged" in r.stdout
    r = kto(root, "annotate", "--answers", str(tmp_path / "a.jsonl"))
    assert "0 added to the log, 4 unchanged" in r.stdout

    r = kto(root, "run")
    assert "START annotation haiku_ratings (new answers in the log)" in r.stdout
    assert "START model votes" in r.stdout
    assert q(root, "select record_id, up, n from votes order by 1") == [("g00000", 1, 2), ("g00001", 1, 1)]
    r = kto(root, "run")
    assert "0 built" in r.stdout

    # Ada changes her mind on g00000: a new row, the old one stays; latest view moves
    write_answers(tmp_path / "b.jsonl", [{"record_id": "g00000", "annotator": "ada", "value": "No"}])
    assert "1 added" in kto(root, "annotate", "--answers", str(tmp_path / "b.jsonl")).stdout
    rows = q(root, "select annotator_id, annotator, value, status, backend from haiku_ratings "
                   "where record_id = 'g00000' order by pulled_at")
    assert rows == [("ada", "Ada", "Yes", "submitted", "local"), ("bob", "bob", "No", "submitted", "local"),
                    ("ada", "ada", "No", "submitted", "local")]
    created = q(root, "select response_created_at = (select response_created_at from haiku_ratings "
                      "where record_id = 'g00000' and annotator_id = 'ada' order by pulled_at limit 1), "
                      "response_updated_at > response_created_at from haiku_ratings_latest "
                      "where record_id = 'g00000' and annotator_id = 'ada'")
    assert created == [(True, True)]
    assert q(root, "select value from haiku_ratings_latest where record_id = 'g00000' and annotator_id = 'ada'") \
        == [("No",)]

    # --full-refresh rebuilds models, never the log
    kto(root, "run", "--full-refresh")
    assert q(root, "select count(*) from haiku_ratings") == [(5,)]

    st = json.loads(kto(root, "status", "--json").stdout)[0]
    assert st["records"] == 5 and st["completed"] == 2 and st["pushed"] is None
    assert st["annotators"] == {"ada": {"submitted": 2}, "bob": {"discarded": 1, "submitted": 1}}
    r = kto(root, "annotate", "--export-pending", str(pending))
    assert "wrote 3 pending records" in r.stdout


def test_bad_answers_are_one_line_and_import_nothing(project_factory, tmp_path):
    root = project_factory(n=3)
    kto(root, "run")
    cases = [
        ([{"record_id": "g00000", "annotator": "ada", "value": "Yes"},
          {"record_id": "g00001", "annotator": "ada", "value": "Maybe"}], ":2: value 'Maybe' is not a label"),
        ([{"record_id": "nope", "annotator": "ada", "value": "Yes"}], ":1: record_id 'nope' is not in 'to_annotate'"),
        ([{"record_id": "g00000", "value": "Yes"}], ":1: missing 'annotator'"),
        ([{"record_id": "g00000", "annotator": "ada", "value": "Yes", "status": "maybe"}], "status 'maybe'"),
    ]
    for rows, expect in cases:
        write_answers(tmp_path / "bad.jsonl", rows)
        r = kto(root, "annotate", "--answers", str(tmp_path / "bad.jsonl"), check=False)
        assert r.returncode == 2
        assert expect in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "Traceback" not in r.stderr
    (tmp_path / "bad.jsonl").write_text('{"record_id": "g00000", "annotator": "ada", "value": "Yes"}\n{oops\n')
    r = kto(root, "annotate", "--answers", str(tmp_path / "bad.jsonl"), check=False)
    assert r.returncode == 2 and "bad.jsonl:2:2: not JSON" in r.stderr
    assert q(root, "select count(*) from haiku_ratings") == [(0,)]


def test_config_errors(project_factory):
    root = project_factory(n=2)
    text = (root / "sources.yml").read_text()
    (root / "sources.yml").write_text(text.replace('labels: ["Yes", "No"]', "labels: [Yes, No]"))
    r = kto(root, "plan", check=False)
    assert r.returncode == 2
    assert "sources.yml:" in r.stderr and "label True in 'haiku_ratings' must be a string" in r.stderr
    assert "quote it" in r.stderr
    (root / "sources.yml").write_text(text.replace("records: to_annotate", "records: to_annotat"))
    r = kto(root, "plan", check=False)
    assert r.returncode == 2 and "did you mean 'to_annotate'?" in r.stderr
    (root / "sources.yml").write_text(text.replace("min_submitted: 1", "min_submited: 1"))
    r = kto(root, "plan", check=False)
    assert r.returncode == 2 and "unknown key 'min_submited'" in r.stderr and "did you mean" in r.stderr


def test_annotate_refuses_argilla_nodes_and_unbuilt_records(project_factory, tmp_path):
    root = project_factory(n=2)
    r = kto(root, "annotate", "-t", "prod", "--export-pending", str(tmp_path / "x.jsonl"), check=False)
    assert r.returncode == 2 and "uses the argilla backend (target prod)" in r.stderr
    r = kto(root, "annotate", "--export-pending", str(tmp_path / "x.jsonl"), check=False)
    assert r.returncode == 2 and "does not exist yet" in r.stderr
    write_answers(tmp_path / "a.jsonl", [{"record_id": "g00000", "annotator": "ada", "value": "Yes"}])
    r = kto(root, "annotate", "--answers", str(tmp_path / "a.jsonl"), check=False)
    assert r.returncode == 2 and "does not exist yet" in r.stderr
    r = kto(root, "annotate", "--port", "0", "--no-browser", check=False, timeout=30)
    assert r.returncode == 2 and "does not exist yet" in r.stderr and "Traceback" not in r.stderr
    assert not (root / "target" / "kto_build.duckdb").exists()
    kto(root, "run", "--select", "haiku_ratings", check=False)  # the records were never built
    r = kto(root, "annotate", "--port", "0", "--no-browser", check=False, timeout=30)
    assert r.returncode == 2 and "records model 'to_annotate' has not been built yet" in r.stderr
    r = kto(root, "annotate", "votes", "--export-pending", str(tmp_path / "x.jsonl"), check=False)
    assert r.returncode == 2 and "'votes' is a model, not an annotation node" in r.stderr


def test_models_may_read_the_latest_view(project_factory, tmp_path):
    root = project_factory(n=3)
    (root / "models" / "latest_up.sql").write_text(
        "select record_id, count(*) filter (where value = 'Yes') as up\n"
        "from haiku_ratings_latest where status = 'submitted' group by record_id\n", encoding="utf-8")
    r = kto(root, "lineage", "latest_up")
    assert "upstream:   to_annotate, haiku_ratings" in r.stdout
    kto(root, "run")
    write_answers(tmp_path / "a.jsonl", [{"record_id": "g00000", "annotator": "ada", "value": "Yes"}])
    kto(root, "annotate", "--answers", str(tmp_path / "a.jsonl"))
    r = kto(root, "run")
    assert "START model latest_up (upstream 'haiku_ratings' changed)" in r.stdout
    write_answers(tmp_path / "a.jsonl", [{"record_id": "g00000", "annotator": "ada", "value": "No"}])
    kto(root, "annotate", "--answers", str(tmp_path / "a.jsonl"))
    kto(root, "run")
    assert q(root, "select record_id, up from latest_up") == [("g00000", 0)]
