"""A small copy of the example project whose generator talks to the local test LLM server
(two models, one prompt that always fails) and whose answers are fed through the local
backend by three annotators with a fixed pattern: no real model, no timing dependence."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.generation.llm_server import LLMServer
from tests.judge_standin import write_judge_standin

REPO = Path(__file__).resolve().parents[2]
KTO = str(Path(sys.executable).with_name("kto-build"))
KEY_ENV = "KTO_DOCS_TEST_KEY"
FAIL = "FAILME"
ANNOTATORS = ("ana", "bo", "cy")

PROJECT_YML = """\
name: haiku_docs
description: Test copy of the haiku example for the docs site.
license: apache-2.0
vars:
  positive_label: "Yes"
  required_lines: 3
  min_annotators: 1
  min_agreement: 1.0
  dpo_min_margin: 0.5
models:
  materialized: table
exports:
  haiku_kto:
    model: kto
    format: kto
    outputs: [parquet]
  haiku_dpo:
    model: dpo
    format: dpo
    outputs: [jsonl]
"""


def sources_yml(url: str) -> str:
    models = "".join(
        f"""      - name: {name}
        llm: OpenAILLM
        params: {{model: test-model, base_url: "{url}"}}
        api_key_env: {KEY_ENV}
        generation: {{temperature: {temp}, max_new_tokens: 32}}
""" for name, temp in (("alpha", 0.3), ("beta", 0.9)))
    return f"""prompts:
  haiku_prompts:
    path: data/prompts.jsonl
    text: instructions
generators:
  haiku_generations:
    description: Haiku from the test server.
    prompts: stg_prompts
    system_prompt: You write haiku.
    num_generations: 1
    batch_size: 10
    backoff: 0.01
    max_failed_fraction: 0.5          # one prompt always fails on purpose (failure reasons on the page)
    models:
{models}annotations:
  haiku_ratings:
    records: to_annotate
    question: {{name: label, title: "Do you like this haiku?", labels: ["Yes", "No"]}}
    min_submitted: 1
    backend: local
"""


def answer(i: int, who: str) -> str:
    """A fixed, not all-agreeing pattern: ana says Yes on even records, bo mostly follows her, cy differs."""
    if who == "ana":
        return "Yes" if i % 2 == 0 else "No"
    if who == "bo":
        return "Yes" if (i % 2 == 0) != (i % 5 == 4) else "No"
    return "Yes" if i % 3 == 0 else "No"


def kto(root: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, KEY_ENV: "sk-docs-test", "NO_COLOR": "1", **(env or {})}
    r = subprocess.run([KTO, "--project-dir", str(root), *args], capture_output=True, text=True, env=full,
                       timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"kto-build {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def tiny_project(root: Path, project_yml: str = "", **models: str) -> Path:
    """A project of plain SQL models (``name=sql``; default: ``a`` and ``b`` reading it), built once."""
    from tests.helpers import ProjectDir

    p = ProjectDir(root)
    p.write("project.yml", f"name: {root.name}\n{project_yml}")
    for name, sql in (models or {"a": "select 1 as x", "b": "select x from a"}).items():
        p.write(f"models/{name}.sql", sql + "\n")
    kto(root, "run")
    return root


@pytest.fixture(scope="session")
def docs_project(tmp_path_factory) -> Path:
    """The project built, answered and built again; returns its root (the site is not built yet)."""
    return build_project(tmp_path_factory.mktemp("docs") / "haiku")


def build_project(root: Path) -> Path:
    (root / "data").mkdir(parents=True)
    lines = (REPO / "data" / "prompts.jsonl").read_text().splitlines()[:10]
    lines.append(json.dumps({"instructions": f"Write a haiku that {FAIL} on the server.", "topic_seed": None}))
    (root / "data" / "prompts.jsonl").write_text("\n".join(lines) + "\n")
    (root / "project.yml").write_text(PROJECT_YML)
    shutil.copytree(REPO / "models", root / "models")
    write_judge_standin(root / "models")
    with LLMServer(fail_marker=FAIL) as srv:
        (root / "sources.yml").write_text(sources_yml(srv.url))
        kto(root, "run", check=False)  # exits non-zero when calls failed (issue 9); the failed rows are kept
    pending = root / "pending.jsonl"
    kto(root, "annotate", "--export-pending", str(pending))
    records = sorted(json.loads(x)["record_id"] for x in pending.read_text().splitlines())
    assert len(records) >= 10, records
    answers = [{"record_id": r, "annotator": who, "value": answer(i, who)}
               for i, r in enumerate(records) for who in ANNOTATORS if not (who == "cy" and i % 4 == 3)]
    (root / "answers.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    kto(root, "annotate", "--answers", str(root / "answers.jsonl"))
    kto(root, "run", "--offline")
    return root
