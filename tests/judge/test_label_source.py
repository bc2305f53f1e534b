"""var label_source (human / judge / human_else_judge) on the example's own SQL models: kto and dpo equal an
independent computation from the stored rows and the answers the test gave; exports keep TRL's columns only;
the dataset card counts labels from people and from each judge; judge_agreement and annotator_stats."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.generation.conftest import KEY_ENV, GenProject

ROOT = Path(__file__).resolve().parents[2]
POSITIVE = "Yes"


@pytest.fixture
def example(tmp_path, llm_server, key_env) -> GenProject:
    p = GenProject(tmp_path / "proj", llm_server)
    shutil.copytree(ROOT / "models", p.root / "models")
    p.write("project.yml", """
        name: label_source_test
        target: dev
        targets:
          dev: {}
        vars:
          positive_label: "Yes"
          required_lines: 3
          min_annotators: 1
          min_agreement: 1.0
          dpo_min_margin: 0.5
          label_source: human
          judge_model: judge-a
        exports:
          haiku_kto: {model: kto, format: kto, style: standard, outputs: [jsonl]}
          haiku_dpo: {model: dpo, format: dpo, style: standard, outputs: [jsonl]}
    """)
    p.write("data/prompts.jsonl", "".join(json.dumps({"id": f"p{i}", "instructions": f"Write a haiku about thing {i}.",
                                                      "topic_seed": f"thing {i}"}) + "\n" for i in range(4)))
    url = llm_server.url

    def entry(name: str, model: str, temperature: float) -> str:
        return (f"      - name: {name}\n        llm: OpenAILLM\n"
                f"        params: {{model: {model}, base_url: \"{url}\"}}\n        api_key_env: {KEY_ENV}\n"
                f"        generation: {{temperature: {temperature}, max_new_tokens: 32}}\n")

    p.write("sources.yml",
            "prompts:\n  haiku_prompts:\n    path: data/prompts.jsonl\n    text: instructions\n    id: id\n"
            "generators:\n  haiku_generations:\n    prompts: stg_prompts\n    models:\n"
            + entry("gen-a", "model-a", 0.7)
            + entry("gen-b", "model-b", 0.9)
            + "annotations:\n  haiku_ratings:\n    records: to_annotate\n"
            "    question: {name: label, labels: [\"Yes\", \"No\"]}\n    backend: local\n"
            "judges:\n  haiku_judge:\n    records: to_annotate\n    annotation: haiku_ratings\n"
            "    max_failed_fraction: 1.0\n    models:\n"
            + entry("judge-a", "judge-model-a", 0.0)
            + entry("judge-b", "judge-model-b", 0.0))
    return p


def judge_replies(server):
    """Scripted verdicts, by judge model, then by what the record says."""
    server.configure(replies={
        "@judge-model-a": {"thing 3": "No", "temperature 0.7": "Yes", "temperature 0.9": "No"},
        "@judge-model-b": {"Response": "No"},
    })


def expected(label_source: str, records, verdicts, answers):
    """kto rows and dpo pairs computed here, independently of the SQL: {(prompt, completion, label, source)}."""
    human = {}
    for rid, votes in answers.items():
        ups = sum(v == POSITIVE for v in votes.values())
        downs = len(votes) - ups
        human[rid] = (ups, downs)
    judged = {rid: label == POSITIVE for rid, model, label, status in verdicts
              if model == "judge-a" and status == "ok" and label is not None}
    kto, scored = set(), {}
    for rid, (prompt, completion) in records.items():
        ups, downs = human.get(rid, (0, 0))
        has_human_label = ups + downs >= 1 and ups != downs and max(ups, downs) / (ups + downs) >= 1.0
        if label_source in ("human", "human_else_judge") and has_human_label:
            kto.add((prompt, completion, ups > downs, "human"))
        elif label_source in ("judge", "human_else_judge") and rid in judged:
            kto.add((prompt, completion, judged[rid], "judge:judge-a"))
        if label_source in ("human", "human_else_judge") and ups + downs >= 1:
            scored[rid] = (ups / (ups + downs), ups + downs, "human")
        elif label_source in ("judge", "human_else_judge") and rid in judged:
            scored[rid] = (1.0 if judged[rid] else 0.0, 1, "judge:judge-a")
    by_prompt: dict[str, list] = {}
    for rid, (score, n, src) in scored.items():
        by_prompt.setdefault(records[rid][0], []).append((score, n, rid, src))
    dpo = set()
    for prompt, cands in by_prompt.items():
        best = sorted(cands, key=lambda c: (-c[0], -c[1], c[2]))[0]
        worst = sorted(cands, key=lambda c: (c[0], -c[1], c[2]))[0]
        if round(best[0] - worst[0], 9) >= 0.5 and records[best[2]][1] != records[worst[2]][1]:
            src = best[3] if best[3] == worst[3] else "+".join(sorted((best[3], worst[3])))
            dpo.add((prompt, records[best[2]][1], records[worst[2]][1], src))
    return kto, dpo


def test_label_source_variants_match_an_independent_computation(example, tmp_path):
    from kto_build.project import Project

    judge_replies(example.server)
    rr = example.run()
    assert rr.ok, [(n['name'], n.get('message')) for n in rr.nodes if n['status'] != 'built']
    records = {r[0]: (r[1], r[2]) for r in example.query("select id, prompt, completion from to_annotate")}
    assert len(records) == 8
    verdicts = example.query("select record_id, judge_model, label, status from haiku_judge")
    assert len(verdicts) == 16
    ids = sorted(records)
    answers = {ids[0]: {"ann": "Yes"}, ids[1]: {"ann": "No", "bob": "No"}, ids[2]: {"ann": "Yes", "bob": "No"},
               ids[5]: {"bob": "Yes"}}
    lines = [{"record_id": rid, "annotator": who, "value": v} for rid, votes in answers.items()
             for who, v in votes.items()]
    f = tmp_path / "answers.jsonl"
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))
    res = example.cli("annotate", "haiku_ratings", "--answers", str(f))
    assert res.returncode == 0, res.stderr
    requests = example.server.requests
    for source in ("human", "judge", "human_else_judge"):
        rr = Project.load(example.root, vars={"label_source": source}).run()
        assert rr.ok, (source, rr.nodes)
        kto = set(example.query("select prompt, completion, label, label_source from kto"))
        dpo = set(example.query("select prompt, chosen, rejected, label_source from dpo"))
        want_kto, want_dpo = expected(source, records, verdicts, answers)
        assert kto == want_kto, source
        assert dpo == want_dpo, source
        assert kto  # each variant has rows, so the comparison means something
        exported = [json.loads(x) for x in (example.root / "target" / "exports" / "dev" / "haiku_kto"
                                            / "train.jsonl").read_text().splitlines()]
        assert len(exported) == len(kto) and all(set(r) == {"prompt", "completion", "label"} for r in exported)
        card = (example.root / "target" / "exports" / "dev" / "haiku_kto" / "README.md").read_text()
        people = sum(1 for r in kto if r[3] == "human")
        judged = len(kto) - people
        parts = ([f"{people} rows from people"] if people else []) + (
            [f"{judged} rows from judge `judge-a` (AI feedback)"] if judged else [])
        assert "- labels from: " + "; ".join(parts) in card, card
    assert example.server.requests == requests  # switching label_source never calls a judge again
    res = example.cli("run", "--vars", "{label_source: people}")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "label_source must be human, judge or human_else_judge, not people" in res.stdout + res.stderr


def test_judge_agreement_and_annotator_stats(example, tmp_path):
    judge_replies(example.server)
    assert example.run().ok
    records = sorted(r[0] for r in example.query("select id from to_annotate"))
    verdict = dict(example.query("select record_id, label from haiku_judge where judge_model = 'judge-a'"))
    human = {records[0]: "Yes", records[1]: "No", records[3]: "Yes", records[4]: "No", records[6]: "Yes"}
    f = tmp_path / "answers.jsonl"
    f.write_text("".join(json.dumps({"record_id": r, "annotator": "ann", "value": v}) + "\n" for r, v in human.items()))
    assert example.cli("annotate", "haiku_ratings", "--answers", str(f)).returncode == 0
    assert example.run().ok
    rows = {r[0]: r for r in example.query(
        "select judge_model, verdicts, compared, accuracy, kappa, judge_up_human_up, judge_up_human_down, "
        "judge_down_human_up, judge_down_human_down from judge_agreement")}
    assert set(rows) == {"judge-a", "judge-b"}
    pairs = [(verdict[r] == "Yes", v == "Yes") for r, v in human.items()]
    n = len(pairs)
    acc = sum(j == h for j, h in pairs) / n
    pj, ph = sum(j for j, _ in pairs) / n, sum(h for _, h in pairs) / n
    chance = pj * ph + (1 - pj) * (1 - ph)
    a = rows["judge-a"]
    assert a[1] == 8 and a[2] == n and a[3] == pytest.approx(acc)
    assert a[4] == (pytest.approx((acc - chance) / (1 - chance)) if chance < 1 else None)
    assert a[5:] == (sum(j and h for j, h in pairs), sum(j and not h for j, h in pairs),
                     sum(h and not j for j, h in pairs), sum(not j and not h for j, h in pairs))
    b = rows["judge-b"]  # always No: accuracy = share of human No, kappa 0 (chance agreement)
    assert b[3] == pytest.approx(sum(not h for _, h in pairs) / n) and b[4] == pytest.approx(0.0)
    stats = {r[0]: r for r in example.query("select annotator_id, kind, answers, compared from annotator_stats")}
    assert stats["ann"][1] == "person" and stats["judge:judge-a"][1] == "judge"
    assert stats["judge:judge-a"][2] == 8 and stats["judge:judge-a"][3] == n
