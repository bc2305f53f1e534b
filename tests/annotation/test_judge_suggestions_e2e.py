"""A real judge node's verdicts become Argilla suggestions, end to end: the judge asks the project's local
OpenAI-compatible server (through distilabel's OpenAILLM, log-probabilities on), the annotation pushes to a
real argilla-server 2.8, and the suggestions read back over REST carry the judge's label, its score and the
judge model's name as agent. A rerun sends no LLM call and no suggestion; a changed record is judged again
(one call) and only its suggestion changes. test_argilla_suggestions.py pins the push alone."""

from __future__ import annotations

import math
import uuid

import pytest

from kto_build.project import Project
from tests.annotation.test_argilla_suggestions import server_suggestions
from tests.generation.conftest import KEY_ENV, SECRET
from tests.generation.llm_server import LLMServer

pytestmark = pytest.mark.slow

JUDGE = """judges:
  haiku_judge:
    records: to_annotate
    annotation: haiku_ratings
    batch_size: 10
    models:
      - name: judge-e2e
        llm: OpenAILLM
        params: {{model: test-model, base_url: "{url}"}}
        api_key_env: {key}
        generation: {{temperature: 0.0, max_new_tokens: 8}}
"""


def lp(**probs) -> dict:
    return {" " + k: math.log(v) for k, v in probs.items()}


def run(root, argilla, monkeypatch) -> dict:
    monkeypatch.setenv("ARGILLA_API_URL", argilla.url)
    monkeypatch.setenv("ARGILLA_API_KEY", argilla.owner_key)
    monkeypatch.setenv(KEY_ENV, SECRET)
    results = Project.load(root, target="prod").run()
    assert results.ok, results.nodes
    return results.node("haiku_ratings")


def test_a_judge_nodes_verdicts_reach_argilla_as_suggestions(argilla, project_factory, monkeypatch):
    with LLMServer() as llm:
        llm.configure(replies={"number 0": {"text": "Yes", "first": lp(Yes=0.8, No=0.2)},
                               "number 1": {"text": "No", "first": lp(No=0.6, Yes=0.3, The=0.1)},
                               "number 2": {"text": "Yes", "first": lp(Yes=0.9, No=0.1)}})
        ds = "haiku-" + uuid.uuid4().hex[:8]
        root = project_factory(n=3, dataset=ds, extra=JUDGE.format(url=llm.url, key=KEY_ENV))
        node = run(root, argilla, monkeypatch)
        assert llm.stats()["requests"] == 3
        assert "pushed 3 records (created the dataset), sent 3 suggestions" in node["message"]
        dsid = argilla.dataset_id(ds)
        got = server_suggestions(argilla, dsid)
        assert {k: (v["question"], v["value"], v["agent"], v["type"]) for k, v in got.items()} == {
            "g00000": ("label", "Yes", "judge-e2e", "model"),
            "g00001": ("label", "No", "judge-e2e", "model"),
            "g00002": ("label", "Yes", "judge-e2e", "model")}
        # the score is the label's probability renormalised over the labels (the verdict's logprobs)
        assert got["g00000"]["score"] == pytest.approx(0.8)
        assert got["g00001"]["score"] == pytest.approx(0.6 / 0.9)
        assert got["g00002"]["score"] == pytest.approx(0.9)

        node = run(root, argilla, monkeypatch)  # nothing changed: no call, no suggestion sent
        assert llm.stats()["requests"] == 3
        assert "pushed 0 records, sent 0 suggestions" in node["message"]
        assert server_suggestions(argilla, dsid) == got

        text = (root / "data" / "to_annotate.jsonl").read_text()
        assert "old pond 1\\n" in text  # JSON lines: the newline is escaped
        (root / "data" / "to_annotate.jsonl").write_text(text.replace("old pond 1\\n", "new pond 1\\n"))
        llm.configure(replies={"number 1": {"text": "Yes", "first": lp(Yes=0.7, No=0.3)}})
        node = run(root, argilla, monkeypatch)
        assert llm.stats()["requests"] == 4  # one record changed: one call
        assert "pushed 1 records, sent 1 suggestions" in node["message"]
        after = server_suggestions(argilla, dsid)
        assert (after["g00001"]["value"], after["g00001"]["score"]) == ("Yes", pytest.approx(0.7))
        assert after["g00000"] == got["g00000"] and after["g00002"] == got["g00002"]
