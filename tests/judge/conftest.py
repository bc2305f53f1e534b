"""Fixtures for judge tests: a real OpenAI-compatible server on 127.0.0.1 and small projects whose judge
talks to it through distilabel's OpenAILLM (records from a jsonl file, a local annotation)."""

from __future__ import annotations

import json
import math
import textwrap

import pytest

from tests.generation.conftest import KEY_ENV, SECRET, GenProject
from tests.generation.llm_server import LLMServer

LABELS = ("Yes", "No")


def lp(**probs) -> dict:
    """A reply's first-token alternatives: lp(Yes=0.7, No=0.2) -> {" Yes": ln 0.7, " No": ln 0.2}."""
    return {" " + k: math.log(v) for k, v in probs.items()}


class JudgeProject(GenProject):
    """records (jsonl: id, prompt, completion) -> annotation 'ratings' (local) and judge 'judge'."""

    def records(self, rows: list[tuple[str, str, str]]) -> None:
        p = self.root / "data" / "records.jsonl"
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("w", encoding="utf-8") as fh:
            for rid, prompt, completion in rows:
                fh.write(json.dumps({"id": rid, "prompt": prompt, "completion": completion}) + "\n")

    def judge_entry(self, name="judge-a", model="test-model", generation="{temperature: 0.0, max_new_tokens: 16}",
                    extra="") -> str:
        url = self.server.url
        return (f"  - name: {name}\n    llm: OpenAILLM\n    params: {{model: {model}, base_url: \"{url}\"}}\n"
                f"    api_key_env: {KEY_ENV}\n    generation: {generation}\n"
                + textwrap.indent(textwrap.dedent(extra).strip("\n"), "    ") + ("\n" if extra else ""))

    def judge(self, models: str | None = None, template: str | None = None,
              settings="batch_size: 5\nbackoff: 0.01\nmax_failed_fraction: 1.0") -> None:
        models = models if models is not None else self.judge_entry()
        tpl = ""
        if template is not None:
            tpl = "    template: |\n" + textwrap.indent(template.strip("\n") + "\n", "      ")
        self.write("sources.yml",
                   "prompts:\n  raw:\n    path: data/records.jsonl\n"
                   "annotations:\n  ratings:\n    records: raw\n"
                   "    question: {name: label, title: \"Do you like it?\", labels: [\"Yes\", \"No\"]}\n"
                   "    backend: local\n"
                   "judges:\n  judge:\n    records: raw\n    annotation: ratings\n" + tpl
                   + textwrap.indent(textwrap.dedent(settings).strip("\n"), "    ") + "\n"
                   "    models:\n" + textwrap.indent(models, "    "))

    def verdicts(self, order="record_id, judge_model"):
        return self.query(f"select record_id, judge_model, label, score, status, error from judge order by {order}")


@pytest.fixture
def llm_server():
    with LLMServer() as srv:
        yield srv


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    return KEY_ENV


@pytest.fixture
def jproj(tmp_path, llm_server, key_env) -> JudgeProject:
    p = JudgeProject(tmp_path / "proj", llm_server)
    p.write("project.yml", """
        name: judge_test
        target: dev
        targets:
          dev: {}
          prod: {}
    """)
    p.records([(f"r{i:02d}", f"Write a haiku about thing {i}.", f"haiku number {i} GOOD" if i % 2 else
                f"haiku number {i} BAD") for i in range(10)])
    llm_server.configure(replies={"GOOD": "Yes", "BAD": "No\nIt does not scan."})
    p.judge()
    return p
