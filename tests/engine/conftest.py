"""A small project in a temp dir: one prompt source and a few SQL models."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kto_build.cli import cli
from tests.helpers import ProjectDir


class Proj(ProjectDir):
    """The engine tests' project: run in-process through click's CliRunner."""

    def cli(self, *args: str):
        result = CliRunner().invoke(cli, ["--project-dir", str(self.root), *args], catch_exceptions=False)
        return result

    def run(self, *args: str) -> dict:
        res = self.cli("run", *args)
        results = json.loads((self.root / "target" / "run_results.json").read_text())
        results["exit_code"] = res.exit_code
        results["output"] = res.output
        return results

    def statuses(self, results: dict) -> dict[str, str]:
        return {n["name"]: n["status"] for n in results["nodes"]}

    def built(self, results: dict) -> set[str]:
        return {n["name"] for n in results["nodes"] if n["status"] == "built"}


PROMPTS = [
    {"instructions": "Write a haiku about rain.", "topic": "rain"},
    {"instructions": "Write a haiku about snow.", "topic": "snow"},
    {"instructions": "  Write a haiku about rain.  ", "topic": "rain"},
    {"instructions": "", "topic": None},
]


@pytest.fixture
def proj(tmp_path) -> Proj:
    p = Proj(tmp_path)
    p.write("project.yml", """
        name: demo
        vars:
          min_len: 3
          suffix: "!"
        models:
          materialized: table
    """)
    p.write("sources.yml", """
        prompts:
          raw_prompts:
            path: data/prompts.jsonl
            text: instructions
    """)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "prompts.jsonl").write_text("\n".join(json.dumps(r) for r in PROMPTS) + "\n")
    p.write("models/stg_prompts.sql", """
        -- trimmed, non-empty, deduplicated prompts
        select min(prompt_id) as prompt_id, trim(prompt) as prompt
        from raw_prompts
        where length(trim(prompt)) >= getvariable('min_len')
        group by trim(prompt)
    """)
    p.write("models/prompt_stats.sql", """
        select count(*) as n, max(length(prompt)) as longest from stg_prompts
    """)
    p.write("models/shouty.sql", """
        with p as (select * from stg_prompts)
        select prompt_id, upper(prompt) || getvariable('suffix') as prompt from p
    """)
    p.write("models/schema.yml", """
        models:
          - name: shouty
            description: Prompts, louder.
            materialized: view
            tags: [fun]
          - name: prompt_stats
            tags: [report, fun]
    """)
    return p
