"""Judge verdicts reach a real argilla-server 2.8 as suggestions (see conftest.py for the server).

The judge table here is written by the test with the judge node's columns (the contract), so these tests
pin down the push alone; tests/annotation/test_judge_suggestions_e2e.py goes through a real judge node.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import duckdb
import pytest

from kto_build.project import Project

pytestmark = pytest.mark.slow

DB = "target/prod.duckdb"
JUDGE_DDL = """CREATE TABLE IF NOT EXISTS {name} (record_id VARCHAR, judge_model VARCHAR, label VARCHAR,
    score DOUBLE, rationale VARCHAR, raw VARCHAR, status VARCHAR, error VARCHAR, created_at TIMESTAMP,
    worker VARCHAR)"""


def sql(root, statement, params=None, read_only=False):
    (root / "target").mkdir(exist_ok=True)
    con = duckdb.connect(str(root / DB), read_only=read_only)
    try:
        return con.execute(statement, params or []).fetchall()
    finally:
        con.close()


def set_verdicts(root, rows, table="fake_judge"):
    """Replace the judge table's rows: (record_id, judge_model, label, score, status)."""
    sql(root, JUDGE_DDL.format(name=table))
    sql(root, f"DELETE FROM {table}")
    for r in rows:
        sql(root, f"INSERT INTO {table} VALUES (?, ?, ?, ?, 'because', 'raw', ?, NULL, ?, 'host:1')",
            [r[0], r[1], r[2], r[3], r[4], datetime(2026, 1, 1)])


def run(root, argilla, monkeypatch, judges=("fake_judge",)) -> dict:
    monkeypatch.setenv("ARGILLA_API_URL", argilla.url)
    monkeypatch.setenv("ARGILLA_API_KEY", argilla.owner_key)
    project = Project.load(root, target="prod")
    project.node("haiku_ratings").suggestions_from = tuple(judges)
    results = project.run()
    node = results.node("haiku_ratings")
    assert results.ok and node["status"] == "built", node
    return node


def server_suggestions(argilla, dsid) -> dict[str, dict]:
    """external id -> {question, value, score, agent, type, updated_at} read back over REST."""
    with argilla.http() as c:
        questions = {q["id"]: q["name"] for q in c.get(f"/api/v1/datasets/{dsid}/questions").json()["items"]}
        page = c.get(f"/api/v1/datasets/{dsid}/records",
                     params={"include": ["suggestions", "responses"], "limit": 1000}).json()
    out = {}
    for rec in page["items"]:
        for s in rec.get("suggestions") or []:
            out[rec["external_id"]] = {"question": questions[s["question_id"]], "value": s["value"],
                                       "score": s["score"], "agent": s["agent"], "type": s["type"],
                                       "updated_at": s["updated_at"]}
    return out


def test_verdicts_become_suggestions_once_and_a_changed_verdict_updates_only_its_record(argilla, project_factory,
                                                                                        monkeypatch):
    ds = "haiku-" + uuid.uuid4().hex[:8]
    root = project_factory(n=6, dataset=ds)
    set_verdicts(root, [
        ("g00000", "judge-small", "No", 0.55, "ok"), ("g00000", "judge-big", "Yes", 0.91, "ok"),
        ("g00001", "judge-small", "No", 0.7, "ok"),
        ("g00002", "judge-small", "Yes", None, "ok"),         # no score (a backend without logprobs)
        ("g00003", "judge-small", None, None, "unparsed"),    # never a suggestion
        ("g00004", "judge-small", "Yes", 0.8, "failed"),
    ])
    node = run(root, argilla, monkeypatch)
    assert "pushed 6 records (created the dataset), sent 3 suggestions (0 to records pushed before)" \
        in node["message"]
    dsid = argilla.dataset_id(ds)
    got = server_suggestions(argilla, dsid)
    assert {k: (v["question"], v["value"], v["score"], v["agent"], v["type"]) for k, v in got.items()} == {
        "g00000": ("label", "Yes", 0.91, "judge-big", "model"),
        "g00001": ("label", "No", 0.7, "judge-small", "model"),
        "g00002": ("label", "Yes", None, "judge-small", "model"),
    }
    log = sql(root, "SELECT dataset_id, record_id, question, value, score, agent, sent_at "
                    "FROM _kto_build.argilla_suggestions ORDER BY record_id", read_only=True)
    assert [r[:6] for r in log] == [(dsid, "g00000", "label", "Yes", 0.91, "judge-big"),
                                    (dsid, "g00001", "label", "No", 0.7, "judge-small"),
                                    (dsid, "g00002", "label", "Yes", None, "judge-small")]

    # a person answers; a suggestion is not an answer: the pull logs ada's answer only
    argilla.answer("ada", ds, "g00001", "Yes")
    node = run(root, argilla, monkeypatch)
    assert "pushed 0 records, sent 0 suggestions (0 to records pushed before)" in node["message"]
    assert node["extra"]["suggestions"] == 0 and node["extra"]["appended"] == 1
    assert sql(root, "SELECT record_id, annotator, value FROM haiku_ratings", read_only=True) == \
        [("g00001", "ada", "Yes")]
    assert server_suggestions(argilla, dsid) == got  # nothing sent: not even updated_at moved
    assert sql(root, "SELECT record_id, value, score, agent, sent_at FROM _kto_build.argilla_suggestions "
                     "ORDER BY record_id", read_only=True) == [r[1:2] + r[3:] for r in log]

    changed_verdicts_update_only_their_records(root, argilla, monkeypatch, dsid, got)
    gone_verdicts_withdraw_their_suggestions(root, argilla, monkeypatch, dsid)


def changed_verdicts_update_only_their_records(root, argilla, monkeypatch, dsid, got):
    """One changed verdict and one new one (a judge that finished later): exactly those two records."""
    set_verdicts(root, [
        ("g00000", "judge-small", "No", 0.55, "ok"), ("g00000", "judge-big", "Yes", 0.91, "ok"),
        ("g00001", "judge-small", "Yes", 0.62, "ok"),
        ("g00002", "judge-small", "Yes", None, "ok"),
        ("g00003", "judge-small", "No", 0.99, "ok"),
        ("g00004", "judge-small", "Yes", 0.8, "failed"),
    ])
    before = {r["external_id"]: r for r in argilla.records(dsid)}
    node = run(root, argilla, monkeypatch)
    assert "pushed 0 records, sent 2 suggestions (2 to records pushed before)" in node["message"]
    after = server_suggestions(argilla, dsid)
    assert (after["g00001"]["value"], after["g00001"]["score"]) == ("Yes", 0.62)
    assert (after["g00003"]["value"], after["g00003"]["score"], after["g00003"]["agent"]) == \
        ("No", 0.99, "judge-small")
    assert after["g00001"]["updated_at"] > got["g00001"]["updated_at"]
    assert after["g00000"] == got["g00000"] and after["g00002"] == got["g00002"]
    # re-sending a record for its suggestion keeps its fields, metadata and people's answers
    records = {r["external_id"]: r for r in argilla.records(dsid)}
    for rid in ("g00001", "g00003"):
        assert records[rid]["fields"] == before[rid]["fields"]
        assert records[rid]["metadata"] == before[rid]["metadata"]
    assert [(r["status"], r["values"]) for r in records["g00001"]["responses"]] == \
        [("submitted", {"label": {"value": "Yes"}})]
    assert len(records) == 6

    node = run(root, argilla, monkeypatch)
    assert "sent 0 suggestions" in node["message"] and "withdrew" not in node["message"]


def gone_verdicts_withdraw_their_suggestions(root, argilla, monkeypatch, dsid):
    """A verdict that is gone (now unparsed) withdraws its suggestion; people's answers stay."""
    sql(root, "UPDATE fake_judge SET status = 'unparsed', label = NULL WHERE record_id = 'g00001'")
    node = run(root, argilla, monkeypatch)
    assert "pushed 0 records, sent 0 suggestions (0 to records pushed before), withdrew 1 suggestions" \
        in node["message"]
    assert sorted(server_suggestions(argilla, dsid)) == ["g00000", "g00002", "g00003"]
    assert [r[0] for r in sql(root, "SELECT record_id FROM _kto_build.argilla_suggestions ORDER BY 1",
                              read_only=True)] == ["g00000", "g00002", "g00003"]
    assert len({r["external_id"]: r for r in argilla.records(dsid)}["g00001"]["responses"]) == 1
    node = run(root, argilla, monkeypatch)
    assert "sent 0 suggestions" in node["message"] and "withdrew" not in node["message"]


def test_a_new_record_carries_its_suggestion_and_a_project_without_judges_sends_none(argilla, project_factory,
                                                                                     monkeypatch):
    ds = "haiku-" + uuid.uuid4().hex[:8]
    root = project_factory(n=3, dataset=ds)
    set_verdicts(root, [("g00000", "judge-small", "Yes", 0.8, "ok")])
    node = run(root, argilla, monkeypatch, judges=())
    assert "pushed 3 records (created the dataset) in" in node["message"]
    dsid = argilla.dataset_id(ds)
    assert server_suggestions(argilla, dsid) == {}
    node = run(root, argilla, monkeypatch)  # the judge is wired in later
    assert "pushed 0 records, sent 1 suggestions (1 to records pushed before)" in node["message"]
    assert {k: v["value"] for k, v in server_suggestions(argilla, dsid).items()} == {"g00000": "Yes"}
    # a changed record is pushed again with its suggestion (one upsert, not two)
    text = (root / "data" / "to_annotate.jsonl").read_text().replace("frog jumps in", "frog leaps in")
    (root / "data" / "to_annotate.jsonl").write_text(text)
    set_verdicts(root, [("g00000", "judge-small", "No", 0.6, "ok")])
    node = run(root, argilla, monkeypatch)
    assert "pushed 3 records, sent 1 suggestions (0 to records pushed before)" in node["message"]
    assert {k: (v["value"], v["score"]) for k, v in server_suggestions(argilla, dsid).items()} == \
        {"g00000": ("No", 0.6)}
