"""Which judge verdict becomes a record's suggestion, and the suggestion log (pure logic on a real DuckDB)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pytest

from kto_build.adapters.argilla_backend import agent_name
from kto_build.nodes.annotation import AnnotationNode
from kto_build.nodes.annotation import suggestions as sg

JUDGE_DDL = """CREATE TABLE {name} (record_id VARCHAR, judge_model VARCHAR, label VARCHAR, score DOUBLE,
    rationale VARCHAR, raw VARCHAR, status VARCHAR, error VARCHAR, created_at TIMESTAMP, worker VARCHAR)"""


def judge_table(con, name: str, rows: list[tuple]) -> None:
    """rows: (record_id, judge_model, label, score, status[, created_at])"""
    con.execute(JUDGE_DDL.format(name=name))
    for r in rows:
        created = r[5] if len(r) > 5 else datetime(2026, 1, 1)
        con.execute(f"INSERT INTO {name} VALUES (?, ?, ?, ?, 'why', 'raw', ?, NULL, ?, 'host:1')",
                    [r[0], r[1], r[2], r[3], r[4], created])


def node(*judges: str) -> AnnotationNode:
    return AnnotationNode(name="ratings", path="sources.yml", line=1, records="recs", labels=["Yes", "No"],
                          question="label", suggestions_from=tuple(judges))


@pytest.fixture
def con():
    c = duckdb.connect()
    c.execute("CREATE TABLE recs AS SELECT 'r' || i AS id, 'p' AS prompt, 'c' AS completion FROM range(6) t(i)")
    yield c
    c.close()


def picks(con, n, ids=None):
    return {k: (v.value, v.score, v.agent, v.judge) for k, v in sg.chosen(con, n, ids).items()}


def test_highest_score_wins_then_scored_before_unscored_then_model_name(con):
    judge_table(con, "j1", [
        ("r0", "small", "No", 0.6, "ok"), ("r0", "big", "Yes", 0.9, "ok"),      # highest score
        ("r1", "small", "No", None, "ok"), ("r1", "big", "Yes", 0.55, "ok"),    # a score beats none
        ("r2", "zeta", "No", 0.7, "ok"), ("r2", "alpha", "Yes", 0.7, "ok"),     # tie: model name
        ("r3", "zeta", "No", None, "ok"), ("r3", "alpha", "Yes", None, "ok"),   # no scores: model name
    ])
    assert picks(con, node("j1")) == {"r0": ("Yes", 0.9, "big", "j1"), "r1": ("Yes", 0.55, "big", "j1"),
                                      "r2": ("Yes", 0.7, "alpha", "j1"), "r3": ("Yes", None, "alpha", "j1")}


def test_only_ok_verdicts_with_a_label_of_the_question_for_known_records(con):
    judge_table(con, "j1", [
        ("r0", "m", None, 0.9, "unparsed"), ("r0", "n", "No", 0.2, "ok"),      # unparsed never suggests
        ("r1", "m", "Yes", 0.9, "failed"),                                      # failed: nothing
        ("r2", "m", "Maybe", 0.9, "ok"),                                        # not a label of the question
        ("r9", "m", "Yes", 0.9, "ok"),                                          # not a record of the node
        ("r3", "m", "No", 1.7, "ok"),                                           # score outside [0, 1]: no score
    ])
    assert picks(con, node("j1")) == {"r0": ("No", 0.2, "n", "j1"), "r3": ("No", None, "m", "j1")}


def test_several_judge_tables_ties_by_judge_node_and_missing_tables_suggest_nothing(con):
    judge_table(con, "jb", [("r0", "same", "No", 0.8, "ok"), ("r1", "m", "No", 0.3, "ok")])
    judge_table(con, "ja", [("r0", "same", "Yes", 0.8, "ok"), ("r1", "m", "Yes", 0.4, "ok")])
    assert picks(con, node("jb", "ja", "not_built_yet")) == {"r0": ("Yes", 0.8, "same", "ja"),
                                                             "r1": ("Yes", 0.4, "m", "ja")}
    assert picks(con, node("not_built_yet")) == {}
    assert picks(con, node()) == {}
    assert picks(con, node("ja"), ["r1"]) == {"r1": ("Yes", 0.4, "m", "ja")}


def test_the_newest_verdict_of_a_model_counts_should_a_table_hold_two(con):
    judge_table(con, "j1", [("r0", "m", "Yes", 0.9, "ok", datetime(2026, 1, 1)),
                            ("r0", "m", "No", 0.6, "ok", datetime(2026, 1, 2))])
    assert picks(con, node("j1")) == {"r0": ("No", 0.6, "m", "j1")}


def test_the_log_makes_unchanged_verdicts_send_nothing_and_changed_ones_send_one(con):
    judge_table(con, "j1", [("r0", "m", "Yes", 0.9, "ok"), ("r1", "m", "No", 0.6, "ok")])
    n = node("j1")
    sg.ensure_log(con)
    first = sg.changed(con, n, "ds1")
    assert sorted(first) == ["r0", "r1"]
    sg.log_sent(con, "ds1", "label", list(first.values()))
    assert sg.changed(con, n, "ds1") == {}
    assert sorted(sg.changed(con, n, "another-dataset")) == ["r0", "r1"]  # the log is per dataset
    con.execute("UPDATE j1 SET score = 0.95 WHERE record_id = 'r1'")
    con.execute("UPDATE j1 SET label = 'No', score = 0.1 WHERE record_id = 'r0'")
    assert {k: (v.value, v.score) for k, v in sg.changed(con, n, "ds1").items()} == {"r0": ("No", 0.1),
                                                                                    "r1": ("No", 0.95)}
    rows = con.execute(f"SELECT dataset_id, record_id, question, value, score, agent FROM {sg.LOG_TABLE} "
                       "ORDER BY record_id").fetchall()
    assert rows == [("ds1", "r0", "label", "Yes", 0.9, "m"), ("ds1", "r1", "label", "No", 0.6, "m")]


@pytest.mark.parametrize("name,agent", [("judge-local", "judge-local"), ("org/model:7b", "org/model:7b"),
                                        ("qwen2.5 (q4)", "qwen2.5 _q4_"), ("!!!", "judge"),
                                        ("x" * 250, "x" * 200)])
def test_agent_names_fit_argilla(name, agent):
    assert agent_name(name) == agent
