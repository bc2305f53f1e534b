"""The example project's models on fixture tables, checked against an independent
Python reference, and var / SQL edits that rebuild exactly the affected nodes."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from conftest import FIXTURES

from kto_build.project import Project
from tests.helpers import query as rows


def _jsonl(name):
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


def reference(positive="Yes", required_lines=3, min_annotators=1, min_agreement=1.0, margin=0.5):
    """kto, dpo and to_annotate computed in plain Python from the fixture files."""
    prompts = {p["instructions"].strip() for p in _jsonl("prompts.jsonl") if p["instructions"].strip()}
    gens = {g["generation_id"]: g for g in _jsonl("gens.jsonl")
            if g["status"] == "ok" and (g["completion"] or "").strip() and g["prompt"].strip() in prompts}
    canonical = {}  # one generation_id per distinct (prompt, completion) text: the smallest
    for gid in sorted(gens):
        canonical.setdefault((gens[gid]["prompt"].strip(), gens[gid]["completion"].strip()), gid)
    to_annotate = {gid for gid, g in gens.items() if gid in canonical.values()
                   and sum(1 for line in g["completion"].strip().split("\n") if line.strip()) == required_lines}
    latest = {}  # the latest event per (record, annotator), whatever its status, decides
    for r in _jsonl("ratings.jsonl"):
        if r["question"] != "label":
            continue
        key = (r["record_id"], r["annotator_id"])
        if key not in latest or r["response_updated_at"] > latest[key]["response_updated_at"]:
            latest[key] = r
    pooled = {}
    for (rid, annotator), r in latest.items():
        if rid in gens and r["status"] == "submitted":
            g = gens[rid]
            key = (canonical[(g["prompt"].strip(), g["completion"].strip())], annotator)
            if key not in pooled or r["response_updated_at"] > pooled[key]["response_updated_at"]:
                pooled[key] = r
    votes = defaultdict(lambda: [0, 0])
    for (gid, _), r in pooled.items():
        votes[gid][0 if r["value"] == positive else 1] += 1
    kto = set()
    for gid, (up, down) in votes.items():
        n = up + down
        if n >= min_annotators and max(up, down) / n >= min_agreement and up != down:
            kto.add((gens[gid]["prompt"].strip(), gens[gid]["completion"].strip(), up > down))
    by_prompt = defaultdict(list)
    for gid, (up, down) in votes.items():
        if up + down >= min_annotators:
            by_prompt[gens[gid]["prompt"].strip()].append((up / (up + down), up + down, gid))
    dpo = set()
    for prompt, items in by_prompt.items():
        best = sorted(items, key=lambda x: (-x[0], -x[1], x[2]))[0]
        worst = sorted(items, key=lambda x: (x[0], -x[1], x[2]))[0]
        chosen, rejected = gens[best[2]]["completion"].strip(), gens[worst[2]]["completion"].strip()
        if round(best[0] - worst[0], 9) >= margin and chosen != rejected:
            dpo.add((prompt, chosen, rejected))
    return {"kto": kto, "dpo": dpo, "to_annotate": to_annotate}




def built(rr):
    return {n["name"] for n in rr.nodes if n["status"] == "built"}


def set_var(project_dir, name, value):
    p = project_dir / "project.yml"
    lines = [f"  {name}: {value}" if line.startswith(f"  {name}:") else line for line in p.read_text().splitlines()]
    p.write_text("\n".join(lines) + "\n")


def test_models_match_reference(project_dir):
    rr = Project.load(project_dir).run()
    assert rr.ok, rr.nodes
    ref = reference()
    assert set(rows(project_dir, "select prompt, completion, label from kto")) == ref["kto"]
    assert len(ref["kto"]) == 9  # a draft saved after a submitted answer withdraws it (as Argilla shows it)
    assert set(rows(project_dir, "select prompt, chosen, rejected from dpo")) == ref["dpo"]
    assert len(ref["dpo"]) == 5
    assert {r[0] for r in rows(project_dir, "select id from to_annotate")} == ref["to_annotate"]
    # the duplicate and the empty prompt are gone
    assert rows(project_dir, "select count(*) from stg_prompts") == [(5,)]
    # alice changed her mind: only her newest answer counts; a later draft or discard withdraws a submit
    assert rows(project_dir, "select count(*) from stg_responses") == [(25,)]
    # types TRL needs
    types = dict(rows(project_dir, "select column_name, data_type from duckdb_columns() where table_name = 'kto'"))
    assert types["label"] == "BOOLEAN"


def test_majority_vote_is_a_var_change(project_dir):
    p = Project.load(project_dir)
    assert p.run().ok
    set_var(project_dir, "min_agreement", 0.6)
    rr = Project.load(project_dir).run()
    assert built(rr) == {"kto", "haiku_kto"}
    assert set(rows(project_dir, "select prompt, completion, label from kto")) == reference(min_agreement=0.6)["kto"]
    assert len(reference(min_agreement=0.6)["kto"]) == 11  # + two 2-of-3 majorities; the tie stays out


@pytest.mark.parametrize(("var", "value", "expected"), [
    ("dpo_min_margin", 0.8, {"dpo", "haiku_dpo"}),
    ("min_annotators", 2, {"kto", "dpo", "haiku_kto", "haiku_dpo"}),
    ("required_lines", 2, {"to_annotate", "model_leaderboard"}),
    ("positive_label", '"No"', {"stg_responses", "label_votes", "kto", "dpo", "annotator_stats",
                                 "judge_labels", "judge_agreement", "model_leaderboard", "haiku_kto", "haiku_dpo"}),
])
def test_var_edit_rebuilds_exactly_the_readers(project_dir, var, value, expected):
    assert Project.load(project_dir).run().ok
    set_var(project_dir, var, value)
    rr = Project.load(project_dir).run()
    assert built(rr) == expected
    assert rr.ok


def test_var_edit_results(project_dir):
    assert Project.load(project_dir).run().ok
    set_var(project_dir, "min_annotators", 2)
    set_var(project_dir, "dpo_min_margin", 0.3)
    assert Project.load(project_dir).run().ok
    ref = reference(min_annotators=2, margin=0.3)
    assert set(rows(project_dir, "select prompt, completion, label from kto")) == ref["kto"]
    assert set(rows(project_dir, "select prompt, chosen, rejected from dpo")) == ref["dpo"]


def test_sql_edits(project_dir):
    assert Project.load(project_dir).run().ok
    kto = project_dir / "models" / "kto.sql"
    kto.write_text("-- a new comment only\n" + kto.read_text().replace("    prompt,", "    prompt ,", 1))
    rr = Project.load(project_dir).run()
    assert built(rr) == set(), "comments and whitespace do not rebuild"
    kto.write_text(kto.read_text().replace("and up_votes <> down_votes", "and up_votes > down_votes"))
    rr = Project.load(project_dir).run()
    assert built(rr) == {"kto", "haiku_kto"}
    assert rows(project_dir, "select count(*) from kto where not label") == [(0,)]


def test_noop_run_builds_nothing(project_dir):
    assert Project.load(project_dir).run().ok
    rr = Project.load(project_dir).run()
    assert built(rr) == set()
    assert all(n["status"] == "skipped" for n in rr.nodes)


def test_annotator_stats_and_leaderboard(project_dir):
    assert Project.load(project_dir).run().ok
    stats = {r[0]: r[1:] for r in rows(project_dir, "select annotator_id, answers, compared, "
                                                    "agreement_with_majority, kappa_vs_majority from annotator_stats")}
    assert stats["u-alice"][0] == 11
    for answers, compared, agreement, kappa in stats.values():
        assert compared <= answers
        assert 0 <= agreement <= 1
        assert kappa is None or -1 <= kappa <= 1
    board = rows(project_dir, "select model_name, generated, usable, sent_to_humans, rated from model_leaderboard "
                              "order by model_name")
    assert board == [("llama-2-70b", 10, 8, 6, 4), ("mistral-7b", 10, 10, 10, 8)]
