"""The example project end to end, as a new user runs it: the real local model writes and judges,
the first exports are labelled by the judge (AI feedback), answers loaded through the local backend
take over, TRL-ready exports, then a no-op run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine.test_lazy_imports import heavy_modules
from tests.helpers import query

ROOT = Path(__file__).resolve().parent.parent


def kto(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "kto_build.cli", "--project-dir", str(project), *args],
                         capture_output=True, text=True, timeout=900)
    if check:
        assert res.returncode == 0, res.stdout + res.stderr
    return res


def results(project: Path) -> dict[str, dict]:
    data = json.loads((project / "target" / "run_results.json").read_text())
    return {n["name"]: n for n in data["nodes"]}




@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    project = tmp_path_factory.mktemp("example") / "haiku"
    res = subprocess.run([sys.executable, "-m", "kto_build.cli", "init", str(project)], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    # the whole example, but on 5 prompts (one a duplicate after trimming) to keep the test short
    lines = (ROOT / "data" / "prompts.jsonl").read_text().splitlines()
    (project / "data" / "prompts.jsonl").write_text("\n".join([*lines[:4], lines[30]]) + "\n")
    return project


def expected_pairs(records, score: dict[str, tuple[float, int]]) -> list[tuple[str, str, str]]:
    """dpo computed here: per prompt the best and the worst record by (share of Yes, answers, id)."""
    out = []
    for prompt in sorted({p for _, p, _ in records}):
        cands = [(score[rid][0], score[rid][1], rid, c) for rid, p, c in records if p == prompt and rid in score]
        if not cands:
            continue
        best = sorted(cands, key=lambda x: (-x[0], -x[1], x[2]))[0]
        worst = sorted(cands, key=lambda x: (x[0], -x[1], x[2]))[0]
        if best[0] - worst[0] >= 0.5 and best[3] != worst[3]:
            out.append((prompt, best[3], worst[3]))
    return sorted(out)


def _load(folder: Path, rows: int, cache: Path):
    """The parquet file as TRL users load it (load_dataset refuses a 0-row file: then pyarrow reads it)."""
    import datasets
    import pyarrow.parquet as pq

    if rows == 0:
        return datasets.Dataset(pq.read_table(folder / "train.parquet"))
    return datasets.load_dataset("parquet", data_files=str(folder / "train.parquet"), split="train",
                                 cache_dir=str(cache))


@pytest.mark.slow
def test_example_end_to_end(example):
    """Every expectation is derived from what the local model wrote and the answers fed here, so the test
    holds for any model output (how many three-line haiku, whether a prompt gets two of them)."""
    # 1. first run: prompts -> real local generations -> records queued for people; exports empty
    kto(example, "run")
    r = results(example)
    assert {n["status"] for n in r.values()} == {"built"}, r
    assert query(example, "select count(*) from stg_prompts") == [(4,)]
    gens = query(example, "select status, count(*), count(distinct prompt_id) from haiku_generations group by 1")
    assert gens == [("ok", 8, 4)], gens
    assert query(example, "select count(*) from haiku_ratings") == [(0,)]
    records = query(example, "select id, prompt, completion from to_annotate order by id")
    assert len({(p, c) for _, p, c in records}) == len(records)  # each distinct text goes to people once

    # the judge (the same local model) answered for every record: a label (any) and a probability each,
    # read from its next-token log-probabilities; nobody has rated, so kto and dpo are its labels
    verdicts = query(example, "select record_id, judge_model, label, score, status from haiku_judge order by 1")
    assert [v[0] for v in verdicts] == [rec[0] for rec in records]
    assert all(v[1] == "gemma-3-270m-judge" and v[2] in ("Yes", "No") and 0.5 <= v[3] <= 1 and v[4] == "ok"
               for v in verdicts), verdicts
    judged_up = {v[0]: v[2] == "Yes" for v in verdicts}
    assert sorted(query(example, "select prompt, completion, label, label_source from kto")) == sorted(
        (p, c, judged_up[rid], "judge:gemma-3-270m-judge") for rid, p, c in records)
    assert sorted(query(example, "select prompt, chosen, rejected from dpo")) == expected_pairs(
        records, {rid: (1.0 if up else 0.0, 1) for rid, up in judged_up.items()})
    card = (example / "target/exports/dev/haiku_kto/README.md").read_text()
    if records:
        assert f"- labels from: {len(records)} rows from judge `gemma-3-270m-judge` (AI feedback)" in card

    # 2. people answer: export the pending records, fill them in, load them back. Per prompt the first
    # record gets Yes from both annotators, the others No: every prompt with 2+ records gives a DPO pair.
    pending = example / "pending.jsonl"
    kto(example, "annotate", "haiku_ratings", "--export-pending", str(pending))
    sent = sorted(json.loads(x)["record_id"] for x in pending.read_text().splitlines())
    assert sent == [rec[0] for rec in records]
    first_of_prompt: dict[str, str] = {}
    for rid, prompt, _ in records:
        first_of_prompt.setdefault(prompt, rid)
    up = {rid: first_of_prompt[prompt] == rid for rid, prompt, _ in records}
    answers = [{"record_id": rid, "annotator": who, "value": "Yes" if up[rid] else "No"}
               for rid, _, _ in records for who in ("ana", "bo")]
    (example / "answers.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    if answers:
        kto(example, "annotate", "haiku_ratings", "--answers", str(example / "answers.jsonl"))
    expected_kto = sorted((p, c, up[rid]) for rid, p, c in records)
    expected_dpo = sorted(
        (p, c, next(c2 for r2, p2, c2 in records if p2 == p and r2 != rid))
        for rid, p, c in records if first_of_prompt[p] == rid and sum(1 for x in records if x[1] == p) > 1)
    # with 3+ records for a prompt, the worst is the No with the smallest id (ties break that way)

    # 3. second run: only what the answers touch rebuilds; no generation request is made again
    kto(example, "run")
    r = results(example)
    assert r["haiku_generations"]["status"] == "skipped" and r["haiku_judge"]["status"] == "skipped"
    assert r["haiku_prompts"]["status"] == "skipped" and r["stg_prompts"]["status"] == "skipped"
    if answers:
        assert r["kto"]["status"] == "built" and r["haiku_kto"]["status"] == "built"
    assert sorted(query(example, "select prompt, completion, label from kto")) == expected_kto
    assert sorted(query(example, "select prompt, chosen, rejected from dpo")) == expected_dpo
    # every record now has people's answers: they replace the judge's labels everywhere
    assert {x[0] for x in query(example, "select label_source from kto union select label_source from dpo")} <= {
        "human"}

    # 4. the exports are what TRL takes, row for row: conversational, the system prompt first
    import datasets
    import yaml

    system = yaml.safe_load((example / "sources.yml").read_text())["generators"]["haiku_generations"][
        "system_prompt"]
    out = example / "target/exports/dev"
    ds = _load(out / "haiku_kto", len(expected_kto), example / ".hf-cache")
    assert ds.column_names == ["prompt", "completion", "label"]
    assert sorted((x["prompt"][-1]["content"], x["completion"][0]["content"], x["label"]) for x in ds) == expected_kto
    assert all(x["prompt"][0] == {"role": "system", "content": system} for x in ds)
    for name, n in (("haiku_kto", len(expected_kto)), ("haiku_dpo", len(expected_dpo))):
        disk = datasets.load_from_disk(str(out / name / "dataset"))  # also when it has 0 rows
        assert len(disk) == n, name
    dpo = datasets.load_from_disk(str(out / "haiku_dpo" / "dataset"))
    assert dpo.column_names == ["prompt", "chosen", "rejected"]
    assert sorted((x["prompt"][-1]["content"], x["chosen"][0]["content"], x["rejected"][0]["content"])
                  for x in dpo) == expected_dpo
    card = (out / "haiku_kto" / "README.md").read_text()
    assert card.startswith("---\n") and "gemma-3-270m" in card and "max_new_tokens: 40" in card
    assert f"({2 * len(records)} current submitted answers; the log keeps {2 * len(records)} events)" in card
    if expected_kto:
        assert f"- labels from: {len(expected_kto)} rows from people" in card

    # 5. nothing changed: every node skipped, and the CLI imports no heavy library
    kto(example, "run")
    assert {n["status"] for n in results(example).values()} == {"skipped"}
    for args in (["run"], ["ls"], ["plan"], ["--help"]):
        assert heavy_modules(["--project-dir", str(example), *args]) == [], args
