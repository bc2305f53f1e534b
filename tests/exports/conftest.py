"""A temp copy of the example project whose generation and annotation nodes are
plain tables loaded from fixture files (the real node kinds are tested elsewhere)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.judge_standin import write_judge_standin

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
KTO_BUILD = str(Path(sys.executable).with_name("kto-build"))

PROJECT_YML = """\
name: haiku_test
description: Test copy of the haiku example.
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
    outputs: [parquet, jsonl, save_to_disk]
  haiku_dpo:
    model: dpo
    format: dpo
    outputs: [parquet, jsonl, save_to_disk]
"""

SOURCES_YML = """\
prompts:
  haiku_prompts:
    path: data/prompts.jsonl
    text: instructions
    description: Haiku instructions.
  haiku_generations:
    path: data/gens.jsonl
    description: Stands in for the generation node (same columns).
  haiku_ratings:
    path: data/ratings.jsonl
    description: Stands in for the annotation log (same columns).
"""


def make_project(root: Path, project_yml: str = PROJECT_YML, sources_yml: str = SOURCES_YML,
                 models: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "project.yml").write_text(project_yml)
    (root / "sources.yml").write_text(sources_yml)
    (root / "data").mkdir(exist_ok=True)
    for f in ("prompts.jsonl", "gens.jsonl", "ratings.jsonl"):
        shutil.copy(FIXTURES / f, root / "data" / f)
    if models:
        shutil.copytree(REPO / "models", root / "models")
        write_judge_standin(root / "models")
    return root


@pytest.fixture
def project_dir(tmp_path) -> Path:
    return make_project(tmp_path / "proj")


def cli(root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run([KTO_BUILD, "--project-dir", str(root), *args], capture_output=True, text=True,
                          env=full_env, timeout=120)
