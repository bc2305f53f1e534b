"""Generate the engine benchmark's workload as three parquet files.

N prompts -> generations (``MODELS`` x ``SAMPLES`` per distinct prompt text) ->
an append-only annotation log (up to 3 annotators per record, Yes/No with
disagreement, drafts and discarded answers, changed answers as extra log rows,
the same response pulled twice). Columns follow docs/architecture.md's table
contracts, so the example project's SQL runs on it unchanged.

The data is made by DuckDB itself from ``range(N)`` with hash-based
pseudo-random draws, so 1M prompts take seconds and the same (N, seed) always
gives the same files. Edge cases the example's rules must handle:

* prompts: blank texts, exact duplicates (same prompt_id), whitespace-padded
  duplicates (another prompt_id, same trimmed text);
* generations: failed rows (NULL completion), empty completions, 2/3/4-line
  completions and 3 non-empty lines around a blank one (only 3-line ones go to
  people), trailing spaces, generations of padded duplicate prompts;
* responses: 0-3 annotators per record, drafts, discarded answers, a changed
  answer (an earlier submitted row with the other value), a submitted answer
  later discarded or turned back into a draft, identical rows pulled twice, and
  answers to a second question.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import duckdb

MODELS = ("gemma-3-270m", "qwen2.5-0.5b")
SAMPLES = 2
N_ANNOTATORS = 24
QUESTION = "label"  # the example's annotation question (models/stg_responses.sql)
OTHER_QUESTION = "style"  # a second question whose answers the label rules must ignore

TOPICS = ["autumn rain", "a cat at dawn", "the sea", "city lights", "old pine", "first snow", "a lantern",
          "cherry blossoms", "a train at night", "the moon", "river stones", "summer heat", "a crow",
          "morning fog", "an empty cup", "the harvest"]
WORDS = ["silent", "pond", "frog", "leaps", "light", "falls", "wind", "over", "mountain", "soft", "shadow",
         "petals", "drift", "cold", "stars", "whisper", "golden", "field", "dusk", "waves", "echo", "bright",
         "paper", "moss"]


def _u(expr: str, salt: str, seed: int) -> str:
    """A uniform draw in [0, 1) from hash(expr, salt, seed)."""
    return f"((hash({expr}, '{salt}', {seed}) % 1000003) / 1000003.0)"


def generate(out_dir: str | Path, n_prompts: int, seed: int = 0, threads: int | None = None) -> dict:
    """Write prompts.parquet, generations.parquet, ratings.parquet into ``out_dir``; return row counts."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    topics = "[" + ", ".join(f"'{t}'" for t in TOPICS) + "]"
    words = "[" + ", ".join(f"'{w}'" for w in WORDS) + "]"
    models = "[" + ", ".join(f"'{m}'" for m in MODELS) + "]"

    # ------------------------------------------------------------- prompts
    con.execute(f"""
        CREATE TEMP TABLE base AS
        SELECT i, {topics}[(1 + (hash(i, 'topic', {seed}) % {len(TOPICS)}))::BIGINT] AS topic,
               'Write a haiku about ' || {topics}[(1 + (hash(i, 'topic', {seed}) % {len(TOPICS)}))::BIGINT]
                   || ' (variation ' || i || ')' AS text,
               {_u('i', 'pkind', seed)} AS r
        FROM range({n_prompts}) t(i)
    """)
    # 0.4% blank, 0.8% exact duplicate of the previous prompt, 0.8% padded duplicate of it
    con.execute("""
        CREATE TEMP TABLE p AS
        SELECT b.i,
               CASE WHEN b.r < 0.004 THEN CASE WHEN b.i % 2 = 0 THEN '' ELSE '   ' END
                    WHEN b.r < 0.012 AND b.i > 0 THEN prev.text
                    WHEN b.r < 0.020 AND b.i > 0 THEN '  ' || prev.text || ' '
                    ELSE b.text END AS instructions,
               b.topic AS topic_seed
        FROM base b LEFT JOIN base prev ON prev.i = b.i - 1
    """)
    con.execute(f"COPY (SELECT instructions, topic_seed FROM p ORDER BY i) TO '{out / 'prompts.parquet'}' "
                "(FORMAT parquet)")

    # --------------------------------------------------------- generations
    # one generation per (distinct non-blank raw text, model, sample), like a content-keyed cache
    con.execute(f"""
        CREATE TEMP TABLE g0 AS
        WITH texts AS (
            SELECT instructions AS prompt, min(i) AS i FROM p WHERE trim(instructions) <> '' GROUP BY ALL
        )
        SELECT md5(prompt) AS prompt_id, prompt, i, m AS model_idx, s AS sample_index,
               md5(prompt || '|' || {models}[(m + 1)::BIGINT] || '|' || s) AS generation_id,
               {_u("md5(prompt || '|' || m || '|' || s)", 'shape', seed)} AS r_shape,
               {_u("md5(prompt || '|' || m || '|' || s)", 'quality', seed)} AS quality,
               hash(md5(prompt || '|' || m || '|' || s), 'words', {seed}) AS h
        FROM texts, range({len(MODELS)}) mm(m), range({SAMPLES}) ss(s)
    """)
    w = f"{words}[1 + ((h >> {{k}}) % {len(WORDS)})::BIGINT]"

    def line(k: int) -> str:
        return f"{w.format(k=k)} || ' ' || {w.format(k=k + 5)} || ' ' || {w.format(k=k + 10)}"

    con.execute(f"""
        CREATE TEMP TABLE g AS
        SELECT generation_id, prompt_id, prompt,
               'You are a poet who writes haiku.' AS system_prompt,
               'haiku_gen' AS generator,
               {models}[(model_idx + 1)::BIGINT] AS model_name,
               md5({models}[(model_idx + 1)::BIGINT] || '{seed}') AS model_fingerprint,
               sample_index::INTEGER AS sample_index,
               CASE WHEN r_shape < 0.01 THEN NULL
                    WHEN r_shape < 0.02 THEN ''
                    WHEN r_shape < 0.10 THEN {line(0)} || chr(10) || {line(16)}
                    WHEN r_shape < 0.18 THEN {line(0)} || chr(10) || {line(16)} || chr(10) || {line(32)}
                                             || chr(10) || {line(48)}
                    WHEN r_shape < 0.20 THEN {line(0)} || chr(10) || '  ' || chr(10) || {line(16)} || chr(10)
                                             || {line(32)} || '  '
                    ELSE {line(0)} || chr(10) || {line(16)} || chr(10) || {line(32)} END AS completion,
               CASE WHEN r_shape < 0.01 THEN 'failed' ELSE 'ok' END AS status,
               CASE WHEN r_shape < 0.01 THEN 'timeout' END AS error,
               '{{"temperature": 0.7, "max_new_tokens": 64}}'::JSON AS generation_kwargs,
               (20 + h % 30)::INTEGER AS input_tokens,
               CASE WHEN r_shape >= 0.01 THEN (15 + h % 20)::INTEGER END AS output_tokens,
               (100 + h % 900)::DOUBLE AS latency_ms,
               TIMESTAMP '2026-01-01' + to_seconds(i) AS created_at,
               quality, r_shape
        FROM g0
    """)
    gen_cols = ("generation_id, prompt_id, prompt, system_prompt, generator, model_name, model_fingerprint, "
                "sample_index, completion, status, error, generation_kwargs, input_tokens, output_tokens, "
                "latency_ms, created_at")
    con.execute(f"COPY (SELECT {gen_cols} FROM g ORDER BY created_at, generation_id) "
                f"TO '{out / 'generations.parquet'}' (FORMAT parquet)")

    # ----------------------------------------------------------- responses
    # records pushed: 3-line ok completions (what to_annotate sends); 95% of them get answers,
    # from 1-3 annotators (mostly 3); value Yes with the generation's latent quality.
    con.execute(f"""
        CREATE TEMP TABLE a AS
        SELECT g.generation_id AS record_id, k,
               (hash(g.generation_id, 'ann0', {seed}) + k * 7) % {N_ANNOTATORS} AS who,
               {_u("g.generation_id || k", 'val', seed)} AS r_val,
               {_u("g.generation_id || k", 'status', seed)} AS r_status,
               {_u("g.generation_id || k", 'hist', seed)} AS r_hist,
               g.quality, g.created_at
        FROM g, range(3) kk(k)
        WHERE g.r_shape >= 0.18
          AND {_u('g.generation_id', 'answered', seed)} < 0.95
          AND k < CASE WHEN {_u('g.generation_id', 'nann', seed)} < 0.10 THEN 1
                       WHEN {_u('g.generation_id', 'nann', seed)} < 0.25 THEN 2 ELSE 3 END
    """)
    # final state of each response, then the history rows that precede it
    con.execute("""
        CREATE TEMP TABLE final AS
        SELECT record_id, who, created_at + INTERVAL 1 DAY + to_seconds(k * 60) AS t0,
               CASE WHEN r_val < quality THEN 'Yes' ELSE 'No' END AS value,
               CASE WHEN r_status < 0.90 THEN 'submitted' WHEN r_status < 0.95 THEN 'draft'
                    ELSE 'discarded' END AS status,
               r_hist
        FROM a
    """)
    con.execute("""
        CREATE TEMP TABLE log AS
        -- the final row of every response (updated 10 min after creation when it has history)
        SELECT record_id, who, value, status, t0 AS created, t0 + INTERVAL 10 MINUTE AS updated, 0 AS pull
        FROM final
        UNION ALL  -- 8%: a changed answer: an earlier submitted row with the other value
        SELECT record_id, who, CASE WHEN value = 'Yes' THEN 'No' ELSE 'Yes' END, 'submitted', t0, t0, 0
        FROM final WHERE r_hist < 0.08
        UNION ALL  -- 4%: submitted earlier with the same value, then drafted or discarded (final row)
        SELECT record_id, who, value, 'submitted', t0, t0, 0
        FROM final WHERE r_hist >= 0.08 AND r_hist < 0.12 AND status <> 'submitted'
        UNION ALL  -- 3%: a draft saved before the final answer
        SELECT record_id, who, value, 'draft', t0, t0 + INTERVAL 1 MINUTE, 0
        FROM final WHERE r_hist >= 0.12 AND r_hist < 0.15
        UNION ALL  -- 5%: the final row pulled twice (identical but for pulled_at)
        SELECT record_id, who, value, status, t0, t0 + INTERVAL 10 MINUTE, 1
        FROM final WHERE r_hist >= 0.15 AND r_hist < 0.20
    """)
    con.execute(f"""
        CREATE TEMP TABLE log2 AS
        SELECT *, '{QUESTION}' AS question FROM log
        UNION ALL  -- 10%: an answer to another question, with the opposite value
        SELECT record_id, who, CASE WHEN value = 'Yes' THEN 'No' ELSE 'Yes' END, 'submitted', created,
               updated + INTERVAL 1 MINUTE, pull, '{OTHER_QUESTION}'
        FROM log WHERE pull = 0 AND {_u('record_id || who', 'q2', seed)} < 0.10
    """)
    con.execute(f"""
        COPY (
            SELECT record_id, question,
                   'u' || lpad(who::VARCHAR, 3, '0') AS annotator_id,
                   'annotator_' || who AS annotator,
                   value, status,
                   created AS response_created_at, updated AS response_updated_at,
                   updated + INTERVAL 1 HOUR + to_seconds(pull * 3600) AS pulled_at,
                   'argilla' AS backend
            FROM log2 ORDER BY pulled_at, record_id, annotator_id, response_updated_at
        ) TO '{out / 'ratings.parquet'}' (FORMAT parquet)
    """)
    counts = {
        "prompts": con.execute("SELECT count(*) FROM p").fetchone()[0],
        "generations": con.execute("SELECT count(*) FROM g").fetchone()[0],
        "ratings": con.execute("SELECT count(*) FROM log2").fetchone()[0],
    }
    con.close()
    counts["seconds"] = round(time.monotonic() - t0, 3)
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--prompts", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(generate(args.out_dir, args.prompts, args.seed))


if __name__ == "__main__":
    main()
