"""An independent reference for the example's ``kto`` and ``dpo`` tables, in pandas.

It reads the bench's parquet files and applies the rules as the example
documents them (models/*.yml descriptions, the comments at the top of each
models/*.sql, project.yml vars), written from those words, not from the SQL:

1. prompt source (``text: instructions``): prompt_id = md5 of the text, prompt = the text.
2. stg_prompts: all Unicode whitespace stripped at both ends; blank prompts dropped;
   one row per distinct stripped text, the smallest prompt_id wins.
3. stg_generations: status 'ok' and a non-blank stripped completion, joined to the
   cleaned prompt by its (stripped) text; completion stripped.
4. stg_responses: question 'label'; per (record, annotator) the latest event by
   response_updated_at, then pulled_at, then value decides, and counts only when it
   is a submit (a discard or draft after a submit withdraws it);
   up = value == var positive_label.
5. label_votes: answers to copies of one (prompt, completion) text go to its smallest
   generation_id, one per annotator (the latest); per generation of stg_generations
   with answers: up, down,
   annotators, up_share = up / annotators, agreement = max(up, down) / annotators.
6. kto: annotators >= min_annotators, agreement >= min_agreement, up != down;
   label = up > down.
7. dpo: among generations with annotators >= min_annotators, per prompt the best
   (highest up_share; ties: more annotators, then smaller generation_id) and the
   worst (lowest up_share; same tie rules); a pair when best - worst >= dpo_min_margin
   (compared at 1e-9) and the two completions differ.

``compare`` matches the reference against a built DuckDB file row for row
(as multisets of (prompt, completion, label) and (prompt, chosen, rejected)).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pandas as pd

QUESTION = "label"


#: Unicode White_Space, plus zero-width space and BOM (the class the example's models strip)
_WS = "\t\n\x0b\x0c\r \x85\u00a0\u1680" + "".join(chr(c) for c in range(0x2000, 0x200C)) + \
    "\u2028\u2029\u202f\u205f\u3000\ufeff"


def _trim(s: pd.Series) -> pd.Series:
    return s.str.strip(_WS)


def reference(data_dir: str | Path, variables: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kto, dpo) computed from the parquet files in ``data_dir`` with the project ``variables``."""
    data = Path(data_dir)
    pos = variables["positive_label"]
    min_ann = variables["min_annotators"]
    min_agree = variables["min_agreement"]
    margin = variables["dpo_min_margin"]

    # 1-2: prompts
    p = pd.read_parquet(data / "prompts.parquet", columns=["instructions"])
    p = p[p["instructions"].notna()]
    p["prompt_id"] = [hashlib.md5(t.encode()).hexdigest() for t in p["instructions"]]
    p["prompt"] = _trim(p["instructions"])
    p = p[p["prompt"] != ""]
    stg_prompts = p.groupby("prompt", as_index=False)["prompt_id"].min()

    # 3: generations
    g = pd.read_parquet(data / "generations.parquet",
                        columns=["generation_id", "prompt", "completion", "status"])
    g = g[(g["status"] == "ok") & g["completion"].notna()]
    g["completion"] = _trim(g["completion"])
    g = g[g["completion"] != ""]
    g["prompt"] = _trim(g["prompt"])
    gens = g.merge(stg_prompts, on="prompt", how="inner")[["generation_id", "prompt_id", "prompt", "completion"]]

    # 4: responses
    r = pd.read_parquet(data / "ratings.parquet",
                        columns=["record_id", "annotator_id", "question", "value", "status",
                                 "response_updated_at", "pulled_at"])
    r = r[r["question"] == QUESTION]
    r = r.sort_values(["record_id", "annotator_id", "response_updated_at", "pulled_at", "value"],
                      ascending=[True, True, False, False, True])
    r = r.drop_duplicates(["record_id", "annotator_id"], keep="first")
    r = r[r["status"] == "submitted"]
    canonical = gens.groupby(["prompt", "completion"])["generation_id"].transform("min")
    r = r.merge(pd.DataFrame({"record_id": gens["generation_id"], "canonical": canonical}), on="record_id")
    r = r.sort_values(["canonical", "annotator_id", "response_updated_at"], ascending=[True, True, False])
    r = r.drop_duplicates(["canonical", "annotator_id"], keep="first")
    r["record_id"] = r["canonical"]
    r["up"] = (r["value"] == pos).astype(int)

    # 5: votes per generation
    v = r.groupby("record_id").agg(up_votes=("up", "sum"), annotators=("up", "size")).reset_index()
    v["down_votes"] = v["annotators"] - v["up_votes"]
    v["up_share"] = v["up_votes"] / v["annotators"]
    v["agreement"] = v[["up_votes", "down_votes"]].max(axis=1) / v["annotators"]
    votes = gens.merge(v, left_on="generation_id", right_on="record_id", how="inner")

    # 6: kto
    k = votes[(votes["annotators"] >= min_ann) & (votes["agreement"] >= min_agree)
              & (votes["up_votes"] != votes["down_votes"])]
    kto = pd.DataFrame({"prompt": k["prompt"], "completion": k["completion"],
                        "label": k["up_votes"] > k["down_votes"]})

    # 7: dpo
    d = votes[votes["annotators"] >= min_ann]
    best = d.sort_values(["prompt_id", "up_share", "annotators", "generation_id"],
                         ascending=[True, False, False, True]).drop_duplicates("prompt_id")
    worst = d.sort_values(["prompt_id", "up_share", "annotators", "generation_id"],
                          ascending=[True, True, False, True]).drop_duplicates("prompt_id")
    pair = best.merge(worst, on="prompt_id", suffixes=("_b", "_w"))
    pair = pair[((pair["up_share_b"] - pair["up_share_w"]).round(9) >= margin)
                & (pair["completion_b"] != pair["completion_w"])]
    dpo = pd.DataFrame({"prompt": pair["prompt_b"], "chosen": pair["completion_b"],
                        "rejected": pair["completion_w"]})
    return kto.reset_index(drop=True), dpo.reset_index(drop=True)


def _rows(df: pd.DataFrame, cols: list[str]) -> Counter:
    return Counter(tuple(x) for x in df[cols].itertuples(index=False, name=None))


def compare(db_path: str | Path, data_dir: str | Path, variables: dict) -> dict:
    """Row-for-row comparison of the built ``kto``/``dpo`` tables with the reference."""
    import duckdb

    kto_ref, dpo_ref = reference(data_dir, variables)
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        kto_db = con.execute("SELECT prompt, completion, label FROM kto").df()
        dpo_db = con.execute("SELECT prompt, chosen, rejected FROM dpo").df()
    finally:
        con.close()
    out = {}
    for name, ref, db, cols in (("kto", kto_ref, kto_db, ["prompt", "completion", "label"]),
                                ("dpo", dpo_ref, dpo_db, ["prompt", "chosen", "rejected"])):
        if "label" in cols:
            ref = ref.assign(label=ref["label"].astype(bool))
            db = db.assign(label=db["label"].astype(bool))
        a, b = _rows(ref, cols), _rows(db, cols)
        matched = sum((a & b).values())
        out[name] = {"reference_rows": sum(a.values()), "built_rows": sum(b.values()), "matched": matched,
                     "only_in_reference": sum((a - b).values()), "only_in_built": sum((b - a).values()),
                     "equal": a == b}
    return out
