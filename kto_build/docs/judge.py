"""Judge pages (node kind "judge", hooked by name: the judge node class is never imported) and the
judge-agreement section of annotation pages.

A judge's table holds one verdict per (record, judge model): record_id, judge_model, label, score,
rationale, raw, status ('ok' | 'unparsed' | 'failed'), error, created_at, worker (docs/architecture.md).
``judge_numbers`` turns those rows into the page's figures; it does no I/O, so it is tested on rows
made in DuckDB."""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape
from typing import Any

from . import plots
from .html import figure, table

STATUSES = ("ok", "unparsed", "failed")


def judge_numbers(rows: list[dict], started: datetime | None = None) -> dict[str, Any]:
    """Per judge model: counts by status and cached (ok verdicts made before ``started``, the last build's
    start), label distribution, scores of ok verdicts, failure reasons (unparsed and failed, by message)."""
    models: dict[str, dict] = {}
    labels: dict[tuple[str, str], int] = {}
    scores: dict[str, list[float]] = {}
    reasons: dict[tuple[str, str, str], int] = {}
    for r in rows:
        m = str(r.get("judge_model"))
        c = models.setdefault(m, {"model": m, **{s: 0 for s in STATUSES}, "other": 0, "cached": 0})
        status = r.get("status")
        c[status if status in STATUSES else "other"] += 1
        if status == "ok":
            created = r.get("created_at")
            if started is not None and created is not None and created < started:
                c["cached"] += 1
            if r.get("label") is not None:
                labels[m, str(r["label"])] = labels.get((m, str(r["label"])), 0) + 1
            if r.get("score") is not None:
                scores.setdefault(m, []).append(float(r["score"]))
        else:
            why = r.get("error") or ("(could not read a verdict from the answer)" if status == "unparsed"
                                     else "(no message)")
            reasons[m, str(status), str(why)] = reasons.get((m, str(status), str(why)), 0) + 1
    return {
        "models": [models[m] for m in sorted(models)],
        "labels": [{"model": m, "label": lab, "rows": n} for (m, lab), n in sorted(labels.items())],
        "scores": {m: scores[m] for m in sorted(scores)},
        "failures": [{"model": m, "status": s, "error": e, "rows": n}
                     for (m, s, e), n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))][:50],
        "cached_known": started is not None,
    }


def judge_rows(snap, node) -> list[dict]:
    """The judge table's rows as dicts (the columns the page uses; a missing column reads as NULL)."""
    if snap.con is None or not snap.has(node.name):
        return []
    have = snap.cols(node.name)
    wanted = ("record_id", "judge_model", "label", "score", "status", "error", "created_at")
    sel = ", ".join(f'"{c}"' if c in have else f'NULL AS "{c}"' for c in wanted)
    return [dict(zip(wanted, r, strict=True)) for r in snap.q(f'SELECT {sel} FROM "{node.name}"')]


def last_build_start(snap, name: str) -> datetime | None:
    st = snap.states.get(name)
    if st is None or st.built_at is None or st.seconds is None:
        return None
    return st.built_at - timedelta(seconds=st.seconds)


def judge_page(snap, node, plotter) -> tuple[str, dict]:
    from .pages import _history, _settings, common

    n = judge_numbers(judge_rows(snap, node), last_build_start(snap, node.name))
    parts = [common(snap, node)]
    for attr, what in (("records", "judges the rows of"), ("annotation", "answers the question of")):
        target = getattr(node, attr, None)
        if target:
            parts.append(f'<p>{what} <a href="{escape(target)}.html">{escape(target)}</a></p>')
    parts += ["<h2>Per judge model</h2>",
              table(["judge model", "ok", "unparsed", "failed", "cached (made before the last build)"],
                    [[m["model"], m["ok"], m["unparsed"], m["failed"], m["cached"] if n["cached_known"] else None]
                     for m in n["models"]]),
              "<h2>Labels</h2>",
              figure(plots.bars([{"label": f"{r['label']} ({r['model']})", "rows": r["rows"]} for r in n["labels"]],
                                "label", "rows", "Verdicts per label", f"{node.name}-labels", plotter),
                     "verdicts per label and judge model"),
              table(["judge model", "label", "verdicts"], [[r["model"], r["label"], r["rows"]] for r in n["labels"]]),
              "<h2>Scores</h2>"]
    figs = [figure(plots.histogram(v, f"{m}: score", "score", f"{node.name}-scores", plotter),
                   f"{m} score histogram") for m, v in n["scores"].items()]
    parts += ["".join(figs) or '<p class="muted">(no scores)</p>', "<h2>Failure reasons</h2>",
              table(["judge model", "status", "error", "rows"],
                    [[f["model"], f["status"], f["error"], f["rows"]] for f in n["failures"]]),
              "<h2>Settings</h2>", _settings(node), _history(snap, node.name)]
    return "".join(parts), n


def agreement_section(snap, name: str = "judge_agreement", limit: int = 50) -> str:
    """Annotation pages: the project's ``judge_agreement`` model as it is stored, when the project has one."""
    if snap.con is None or name not in snap.project.nodes or not snap.has(name):
        return ""
    cols = list(snap.cols(name))
    rows = snap.q(f'SELECT * FROM "{name}" ORDER BY ALL LIMIT {int(limit)}')
    more = f" (first {limit} rows)" if len(rows) == limit else ""
    return (f'<h2>Judge agreement</h2><p>From the model <a href="{escape(name)}.html">{escape(name)}</a>{more}:</p>'
            + table(cols, [list(r) for r in rows]))
