"""The example project end to end, as a new user runs it: the real local model,
answers loaded through the local backend, TRL-ready exports, then a no-op run."""

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


@pytest.mark.slow
def test_example_end_to_end(example):
    # 1. first run: prompts -> real local generations -> records queued for people; exports empty
    kto(example, "run")
    r = results(example)
    assert {n["status"] for n in r.values()} == {"built"}, r
    assert query(example, "select count(*) from stg_prompts") == [(4,)]
    gens = query(example, "select status, count(*), count(distinct prompt_id), min(length(completion)) "
                          "from haiku_generations group by 1")
    assert gens[0][:3] == ("ok", 8, 4) and gens[0][3] > 0, gens
    assert query(example, "select count(*) from haiku_ratings") == [(0,)]
    (n_records,) = query(example, "select count(*) from to_annotate")[0]
    assert n_records >= 2, "the local model wrote fewer than two three-line haiku"

    # 2. people answer: export the pending records, fill them in, load them back
    pending = example / "pending.jsonl"
    kto(example, "annotate", "haiku_ratings", "--export-pending", str(pending))
    records = [json.loads(x) for x in pending.read_text().splitlines()]
    assert len(records) == n_records
    answers = []
    for i, rec in enumerate(sorted(records, key=lambda x: x["record_id"])):
        answers.append({"record_id": rec["record_id"], "annotator": "ana", "value": "Yes" if i % 2 == 0 else "No"})
        answers.append({"record_id": rec["record_id"], "annotator": "bo", "value": "Yes" if i % 2 == 0 else "No"})
    (example / "answers.jsonl").write_text("\n".join(json.dumps(a) for a in answers) + "\n")
    kto(example, "annotate", "haiku_ratings", "--answers", str(example / "answers.jsonl"))

    # 3. second run: only what the answers touch rebuilds; no generation request is made again
    kto(example, "run")
    r = results(example)
    assert r["haiku_generations"]["status"] == "skipped"
    assert r["haiku_prompts"]["status"] == "skipped" and r["stg_prompts"]["status"] == "skipped"
    assert r["kto"]["status"] == "built" and r["haiku_kto"]["status"] == "built"
    kto_rows = query(example, "select prompt, completion, label from kto order by all")
    assert len(kto_rows) == n_records  # two annotators who always agree: every record is labelled
    assert {row[2] for row in kto_rows} == {True, False}

    # 4. the exports are what TRL takes, row for row
    import datasets

    ds = datasets.load_dataset("parquet", data_files=str(example / "target/exports/haiku_kto/train.parquet"),
                               split="train", cache_dir=str(example / ".hf-cache"))
    assert ds.column_names == ["prompt", "completion", "label"]
    assert str(ds.features["label"].dtype) == "bool"
    assert sorted(zip(ds["prompt"], ds["completion"], ds["label"], strict=True)) == sorted(kto_rows)
    dpo = datasets.load_from_disk(str(example / "target/exports/haiku_dpo/dataset"))
    assert dpo.column_names == ["prompt", "chosen", "rejected"]
    assert len(dpo) == query(example, "select count(*) from dpo")[0][0]
    card = (example / "target/exports/haiku_kto/README.md").read_text()
    assert card.startswith("---\n") and "gemma-3-270m" in card

    # 5. nothing changed: every node skipped, and the CLI imports no heavy library
    kto(example, "run")
    assert {n["status"] for n in results(example).values()} == {"skipped"}
    for args in (["run"], ["ls"], ["plan"], ["--help"]):
        assert heavy_modules(["--project-dir", str(example), *args]) == [], args
