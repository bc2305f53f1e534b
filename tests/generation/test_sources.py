"""Prompt sources: jsonl / csv / parquet through DuckDB, a `datasets` dataset from local files, content-hash skip."""

from __future__ import annotations

import json

import pytest

from kto_build.errors import KtoBuildError
from kto_build.project import Project
from tests.helpers import ProjectDir, query

PROMPTS = [{"pid": "a", "instructions": "Write a haiku about rain.", "topic": "rain"},
           {"pid": "b", "instructions": "Write a haiku about snow.", "topic": "snow"}]


def project(tmp_path, sources: str):
    p = ProjectDir(tmp_path)
    p.write("project.yml", "name: src_test\n")
    p.write("sources.yml", sources)
    (tmp_path / "data").mkdir(exist_ok=True)
    return tmp_path


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))




@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_file_formats_give_prompt_id_and_prompt(tmp_path, fmt):
    root = project(tmp_path, f"""
        prompts:
          p:
            path: data/prompts.{fmt}
            text: instructions
            id: pid
    """)
    import duckdb

    write_jsonl(root / "data" / "prompts.jsonl", PROMPTS)
    if fmt != "jsonl":
        con = duckdb.connect()
        opts = "(FORMAT parquet)" if fmt == "parquet" else "(HEADER)"
        con.execute(f"COPY (SELECT * FROM read_json_auto('{root}/data/prompts.jsonl')) "
                    f"TO '{root}/data/prompts.{fmt}' {opts}")
        con.close()
    rr = Project.load(root).run()
    assert rr.ok, rr.nodes
    assert query(root, "SELECT prompt_id, prompt, topic FROM p ORDER BY 1") == [
        ("a", "Write a haiku about rain.", "rain"), ("b", "Write a haiku about snow.", "snow")]


def test_no_id_column_hashes_the_text_and_unchanged_file_is_skipped(tmp_path):
    root = project(tmp_path, """
        prompts:
          p: {path: data/prompts.jsonl, text: instructions}
    """)
    write_jsonl(root / "data" / "prompts.jsonl", PROMPTS)
    assert Project.load(root).run().node("p")["status"] == "built"
    import hashlib

    ids = dict(query(root, "SELECT prompt, prompt_id FROM p"))
    assert ids["Write a haiku about rain."] == hashlib.md5(b"Write a haiku about rain.").hexdigest()
    assert Project.load(root).run().node("p")["status"] == "skipped"
    # touched but identical: the content hash says nothing changed
    (root / "data" / "prompts.jsonl").write_text((root / "data" / "prompts.jsonl").read_text())
    assert Project.load(root).run().node("p")["status"] == "skipped"
    write_jsonl(root / "data" / "prompts.jsonl", [*PROMPTS, {"pid": "c", "instructions": "Fog.", "topic": None}])
    rr = Project.load(root).run()
    assert rr.node("p")["status"] == "built" and rr.node("p")["reason"] == "input file changed"
    assert rr.node("p")["rows"] == 3


def test_dataset_from_local_files_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    root = project(tmp_path, """
        prompts:
          p:
            dataset: json
            data_files: data/prompts.jsonl
            split: train
            text: instructions
            id: pid
    """)
    write_jsonl(root / "data" / "prompts.jsonl", PROMPTS)
    rr = Project.load(root).run()
    assert rr.ok, rr.nodes
    assert query(root, "SELECT prompt_id, prompt FROM p ORDER BY 1") == [
        ("a", "Write a haiku about rain."), ("b", "Write a haiku about snow.")]
    assert Project.load(root).run().node("p")["status"] == "skipped"
    write_jsonl(root / "data" / "prompts.jsonl", PROMPTS[:1])
    rr = Project.load(root).run()
    assert rr.node("p")["status"] == "built" and rr.node("p")["rows"] == 1


def test_source_errors_are_one_line(tmp_path):
    root = project(tmp_path, """
        prompts:
          p: {path: data/prompts.jsonl, text: instruction}
    """)
    write_jsonl(root / "data" / "prompts.jsonl", PROMPTS)
    rr = Project.load(root).run()
    msg = rr.node("p")["message"]
    assert rr.node("p")["status"] == "failed"
    assert msg.startswith("sources.yml:2: column 'instruction' not found") and "instructions" in msg
    project(tmp_path, """
        prompts:
          p: {path: data/prompts.txt}
    """)
    with pytest.raises(KtoBuildError, match=r"cannot read 'data/prompts\.txt'"):
        Project.load(root)
