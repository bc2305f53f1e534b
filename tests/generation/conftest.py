"""Fixtures for generation tests: a real OpenAI-compatible server on 127.0.0.1 and
small projects in temp dirs whose generator talks to it through distilabel's OpenAILLM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.generation.llm_server import LLMServer
from tests.helpers import ProjectDir

KEY_ENV = "KTO_TEST_LLM_KEY"
SECRET = "sk-test-SECRET-value-7f3a"


class GenProject(ProjectDir):
    """A project: prompts (jsonl) -> generator 'gens' -> model 'good' (ok rows)."""

    def __init__(self, root: Path, server: LLMServer | None):
        super().__init__(root)
        self.server = server

    # ------------------------------------------------------------- writing
    def prompts(self, texts: list[str]) -> None:
        p = self.root / "data" / "prompts.jsonl"
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("w", encoding="utf-8") as fh:
            for i, t in enumerate(texts):
                fh.write(json.dumps({"id": f"p{i:04d}", "instructions": t}) + "\n")

    def model_entry(self, name="srv", generation="{temperature: 0.7, max_new_tokens: 32}", extra="",
                    api_key_env=KEY_ENV, llm="OpenAILLM") -> str:
        url = self.server.url if self.server else "http://127.0.0.1:9/v1"
        key = f"\n    api_key_env: {api_key_env}" if api_key_env else ""
        return (f"  - name: {name}\n    llm: {llm}\n    params: {{model: test-model, base_url: \"{url}\"}}{key}\n"
                f"    generation: {generation}\n" + textwrap.indent(textwrap.dedent(extra).strip("\n"), "    ")
                + ("\n" if extra else ""))

    def generator(self, models: str | None = None, num_generations=1, settings="batch_size: 10\nbackoff: 0.01",
                  system_prompt="You write haiku.") -> None:
        models = models if models is not None else self.model_entry()
        self.write("sources.yml", "prompts:\n  raw:\n    path: data/prompts.jsonl\n    text: instructions\n    id: id\n"
                   "generators:\n  gens:\n    prompts: raw\n"
                   f"    system_prompt: {system_prompt}\n    num_generations: {num_generations}\n"
                   + textwrap.indent(textwrap.dedent(settings).strip("\n"), "    ") + "\n"
                   "    models:\n" + textwrap.indent(models, "    "))

    # ------------------------------------------------------------- running
    def load(self, target=None):
        from kto_build.project import Project

        return Project.load(self.root, target=target)

    def run(self, target=None, **kw):
        return self.load(target).run(**kw)

    def cli(self, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        full_env = {**os.environ, **(env or {})}
        return subprocess.run([str(Path(sys.executable).parent / "kto-build"), "--project-dir", str(self.root),
                               *args], capture_output=True, text=True, env=full_env, timeout=timeout)


@pytest.fixture
def llm_server():
    with LLMServer() as srv:
        yield srv


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    return KEY_ENV


@pytest.fixture
def gproj(tmp_path, llm_server, key_env) -> GenProject:
    p = GenProject(tmp_path / "proj", llm_server)
    p.write("project.yml", """
        name: gen_test
        target: dev
        targets:
          dev: {}
          prod: {}
    """)
    p.write("models/good.sql", "select generation_id, prompt, completion from gens where status = 'ok'\n")
    p.prompts([f"Write a haiku about thing number {i}." for i in range(20)])
    p.generator()
    return p
