"""Issue 8: outputs that were quietly wrong, each with the exact rows or message it must give now."""

from __future__ import annotations

import json

import datasets
import duckdb
import pyarrow.parquet as pq
from conftest import PROJECT_YML, make_project

from kto_build.project import Project

KTO_FEATURES = {"prompt": datasets.Value("string"), "completion": datasets.Value("string"),
                "label": datasets.Value("bool")}
DPO_FEATURES = {c: datasets.Value("string") for c in ("prompt", "chosen", "rejected")}


def rows(root, sql, params=None):
    con = duckdb.connect(str(root / "target" / "kto_build.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _append(root, name, records):
    with open(root / "data" / name, "a", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def _first(root, name):
    return json.loads((root / "data" / name).read_text().splitlines()[0])


def test_empty_export_loads_with_exact_features(tmp_path):
    yml = PROJECT_YML.replace("  haiku_kto:\n    model: kto", "  haiku_kto:\n    model: empty_kto")
    yml = yml.replace("  haiku_dpo:\n    model: dpo", "  haiku_dpo:\n    model: empty_dpo")
    root = make_project(tmp_path / "p", project_yml=yml)
    (root / "models" / "empty_kto.sql").write_text("select prompt, completion, label from kto where false")
    (root / "models" / "empty_dpo.sql").write_text("select prompt, chosen, rejected from dpo where false")
    rr = Project.load(root).run()
    assert rr.ok, rr.nodes
    for name, feats in (("haiku_kto", KTO_FEATURES), ("haiku_dpo", DPO_FEATURES)):
        out = root / "target" / "exports" / "default" / name
        ds = datasets.load_from_disk(str(out / "dataset"))
        assert len(ds) == 0 and dict(ds.features) == feats, name
        table = pq.read_table(out / "train.parquet")
        assert table.num_rows == 0
        assert datasets.Features.from_arrow_schema(table.schema) == datasets.Features(feats)
        assert (out / "train.jsonl").read_text() == ""  # 0 rows
        card = (out / "README.md").read_text()
        assert "**This export is empty.**" in card and "Instruction 'train' corresponds to no data" in card
        assert 'datasets.load_from_disk(\\"dataset\\")' not in card and 'load_from_disk("dataset")' in card


TARGETS_YML = PROJECT_YML.replace("vars:", "target: dev\ntargets:\n  dev:\n    database: target/dev.duckdb\n"
                                  "  prod:\n    database: target/prod.duckdb\n    vars: {min_agreement: 0.6}\nvars:")


def test_targets_write_separate_exports_and_changed_files_are_noticed(tmp_path):
    root = make_project(tmp_path / "p", project_yml=TARGETS_YML)
    assert Project.load(root).run().ok
    assert Project.load(root, target="prod").run().ok
    rr = Project.load(root).run()
    assert [n["name"] for n in rr.nodes if n["status"] == "built"] == []
    dev = root / "target/exports/dev/haiku_kto/train.parquet"
    prod = root / "target/exports/prod/haiku_kto/train.parquet"
    assert (pq.read_table(dev).num_rows, pq.read_table(prod).num_rows) == (9, 11)
    assert "(target `dev`)" in (dev.parent / "README.md").read_text()
    # a file that is not the one the export wrote (same size, other bytes) makes it stale
    jsonl = dev.parent / "train.jsonl"
    jsonl.write_text(jsonl.read_text().replace('"prompt"', '"PROMPT"', 1))
    plan = {i.name: i for i in Project.load(root).plan().items}
    assert plan["haiku_kto"].reason == "files changed: target/exports/dev/haiku_kto/train.jsonl"
    assert plan["haiku_dpo"].action == "skip"
    assert Project.load(root).run().node("haiku_kto")["status"] == "built"
    assert '"PROMPT"' not in jsonl.read_text()
    (dev.parent / "dataset" / "state.json").unlink()
    plan = {i.name: i for i in Project.load(root).plan().items}
    assert plan["haiku_kto"].reason == "files missing: target/exports/dev/haiku_kto/dataset/state.json"


def test_identical_completions_are_rated_once(tmp_path):
    root = make_project(tmp_path / "p")
    g = _first(root, "gens.jsonl")
    _append(root, "gens.jsonl", [{**g, "generation_id": "ffff000000000001", "sample_index": 1,
                                  "completion": g["completion"] + "\n"}])
    r = _first(root, "ratings.jsonl")
    assert r["record_id"] == g["generation_id"]
    _append(root, "ratings.jsonl", [{**r, "record_id": "ffff000000000001", "annotator_id": "u-dave",
                                     "annotator": "dave", "value": "Yes"}])
    rr = Project.load(root).run()
    assert rr.ok, rr.nodes
    assert rows(root, "select count(*) from to_annotate") == [(16,)]  # as without the copy
    assert rows(root, "select id from to_annotate where completion = ?", [g["completion"]]) == [(g["generation_id"],)]
    # dave's answer to the copy counts for the one text: 3 + 1 answers, one kto row
    assert rows(root, "select annotators from label_votes where generation_id = ?", [g["generation_id"]]) == [(4,)]
    assert rows(root, "select count(*) from kto where completion = ?", [g["completion"]]) == [(1,)]
    assert rr.node("kto")["status"] == "built"


def test_a_discard_after_a_submit_withdraws_it(tmp_path):
    root = make_project(tmp_path / "p")
    r = _first(root, "ratings.jsonl")
    assert Project.load(root).run().ok
    before = rows(root, "select annotators from label_votes where generation_id = ?", [r["record_id"]])[0][0]
    _append(root, "ratings.jsonl", [{**r, "status": "discarded", "value": None,
                                     "response_updated_at": "2026-11-22T09:00:00", "pulled_at": "2026-11-22T10:00:00"}])
    assert Project.load(root).run().ok
    assert rows(root, "select annotators from label_votes where generation_id = ?", [r["record_id"]]) == [(before - 1,)]
    assert rows(root, "select count(*) from haiku_ratings") == [(31,)]  # the log keeps every row
    assert rows(root, "select count(*) from stg_responses") == [(24,)]


def test_unicode_whitespace_is_stripped_and_blank_prompts_dropped(tmp_path):
    root = make_project(tmp_path / "p")
    _append(root, "prompts.jsonl", [
        {"instructions": "Write a haiku about the sea.\n", "topic_seed": "x"},        # a copy after stripping
        {"instructions": "\u00a0Write a haiku about the sea.\u3000\u200b", "topic_seed": "y"},
        {"instructions": "\t", "topic_seed": "z"},
        {"instructions": " \u2028\u00a0\r\n\u0085\ufeff", "topic_seed": "w"},
        {"instructions": "\tWrite a haiku about fog.\u2003", "topic_seed": "fog"},
    ])
    assert Project.load(root).run().ok
    assert rows(root, "select count(*) from stg_prompts") == [(6,)]  # the 5 before, plus fog
    assert rows(root, "select prompt from stg_prompts where topic_seed = 'fog'") == [("Write a haiku about fog.",)]
