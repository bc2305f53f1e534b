"""Page bodies, one function per node kind (judge pages: judge.py)."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from . import collect, plots
from .html import figure, highlight, link, markdown, table
from .judge import agreement_section
from .stats import kto_balance, pairwise_kappa, wilson


def href(name: str, root: str = "") -> str:
    return f"{root}nodes/{name}.html"


def _neighbours(project, name: str) -> str:
    g = project.graph
    up = [link(f"{p}.html", p) for p in g.parents.get(name, [])]  # node pages are siblings
    down = [link(f"{c}.html", c) for c in g.children.get(name, [])]
    return (f"<p><b>Upstream:</b> {', '.join(up) or '(none)'}<br>"
            f"<b>Downstream:</b> {', '.join(down) or '(none)'}</p>")


def _history(snap, name: str) -> str:
    """The node's last builds (the append-only _kto_build.node_history), newest first, and seconds per build."""
    builds = snap.history.get(name, [])
    st = collect.node_status(snap, name)
    if not builds:  # a database from before node_history: the state's last build
        rows = [[str(st["built_at"]) if st["built_at"] else None, None, st["rows"], st["seconds"], None, None]]
    else:
        rows = [[str(b["finished_at"]), b["status"], b["rows"], b["seconds"], (b["fingerprint"] or "")[:12],
                 b.get("message") or ""] for b in reversed(builds)]
    chart = ""
    if snap.plotter is not None:
        chart = figure(plots.build_history(builds, f"{name}-history", snap.plotter), "seconds per build")
    note = (f'<p class="muted">Last {len(builds)} builds (at most {collect.HISTORY}); last run: '
            f'{escape(str(st["last_run"] or "-"))}; the runs are listed on the '
            '<a href="../index.html#runs">index</a>.</p>')
    head = ["finished at", "status", "rows", "seconds", "fingerprint", "message"]
    return "<h2>Build history</h2>" + chart + table(head, rows) + note


def _settings(node) -> str:
    from ..nodes.export.card import _plain, redact

    try:
        settings = node.definition()
        if isinstance(settings, str):
            settings = json.loads(settings)
    except (TypeError, ValueError):
        settings = node.config
    return "<pre>" + escape(json.dumps(redact(_plain(settings)), indent=2, default=str)) + "</pre>"


def common(snap, node) -> str:
    st = collect.node_status(snap, node.name)
    parts = [f'<p><b>{escape(node.kind)}</b> · defined at <code>{escape(str(node.path))}:{node.line}</code> · '
             f'status <span class="status-{st["status"]}">{escape(st["status"])}</span>'
             + (f" · {st['rows']:,} rows" if st["rows"] is not None else "") + "</p>"]
    if node.description:
        parts.append(f"<p>{escape(node.description)}</p>")
    if node.tags:
        parts.append("<p>tags: " + ", ".join(f"<code>{escape(t)}</code>" for t in node.tags) + "</p>")
    parts.append(_neighbours(snap.project, node.name))
    return "".join(parts)


# ------------------------------------------------------------------ models
def model_page(snap, node, lineage: dict[str, list[dict]], tests: list[dict]) -> str:
    docs = {c.get("name"): c for c in node.columns}
    cols = snap.cols(node.name)
    names = list(cols) or list(docs)
    rows = []
    for c in names:
        src = lineage.get(c) or []
        srcs = ", ".join(link(f"{s['table']}.html", f"{s['table']}.{s['column']}") for s in src)
        rows.append([escape(c), escape(cols.get(c, (docs.get(c) or {}).get("data_type") or "")),
                     escape((docs.get(c) or {}).get("description") or ""), srcs])
    sql_html, compiled_html = _sql_sections(snap, node)
    parts = [common(snap, node), f"<p>materialized as <b>{escape(node.materialization)}</b>"
             + (", reads vars " + ", ".join(f"<code>{escape(v)}</code>" for v in node.used_vars)
                if node.used_vars else "") + "</p>",
             "<h2>Columns</h2>", table(["column", "type", "description", "comes from"], rows, raw={0, 1, 2, 3}),
             "<h2>SQL</h2>", sql_html, "<h2>Compiled SQL</h2>", compiled_html]
    test_rows = [[t["name"], f'<span class="status-{t["status"]}">{t["status"]}</span>', t["failures"],
                  escape(t.get("message") or "")] for t in tests]
    parts += ["<h2>Data tests</h2>", table(["test", "result", "failing rows", "message"],
                                           [[escape(r[0]), r[1], r[2], r[3]] for r in test_rows], raw={0, 1, 3})]
    parts.append(_history(snap, node.name))
    return "".join(parts)


def _sql_sections(snap, node) -> list[str]:
    """The SQL and the compiled SQL highlighted; the compiled body shares the SQL's tokens when it is the same
    text (no vars inlined), and the tokens are those the column lineage parsed (sqltok.py): one tokenization."""
    sql, comp = node.sql.strip(), compiled(snap.project, node)

    def both() -> list[str]:
        from .html import tokens
        from .sqltok import highlight_tokens

        def lex(text: str) -> list[tuple[str, str]]:
            return highlight_tokens(text) or tokens(text)

        toks = lex(sql)
        head, body = comp.split("\n", 1)  # CREATE OR REPLACE <verb> "<name>" AS: no lexer needed
        verb = "VIEW" if node.materialization == "view" else "TABLE"
        head_toks = [p for w in ("CREATE", "OR", "REPLACE", verb) for p in (("k", w), ("w", " "))] + [
            ("s2", f'"{node.name}"'), ("w", " "), ("k", "AS"), ("w", "\n")]
        if "".join(v for _, v in head_toks) != head + "\n":  # compiled() wrote another header
            head_toks = lex(head + "\n")
        comp_toks = head_toks + (toks if body == sql else lex(body))
        return [highlight(sql, toks=toks), highlight(comp, toks=comp_toks)]

    if snap.cache is None:
        return both()
    from .cache import key

    return snap.cache.get("sql2", key(sql, comp), both)


def compiled(project, node) -> str:
    from ..sql import inline_vars

    body = node.sql.rstrip().rstrip(";")
    if node.used_vars:
        body = inline_vars(body, project.vars)
    verb = "VIEW" if node.materialization == "view" else "TABLE"
    return f'CREATE OR REPLACE {verb} "{node.name}" AS\n{body}'


# -------------------------------------------------------------- generators
def generation_page(snap, node, plotter) -> str:
    g = collect.generation_stats(snap, node)
    parts = [common(snap, node), "<h2>Per model</h2>",
             table(["model", "ok", "failed", "cached (made before the last build)", "output tokens"],
                   [[m["model"], m["ok"], m["failed"], m["cached"], m["output_tokens"]] for m in g["models"]])]
    figs = []
    for model in sorted(set(g["latency"]) | set(g["tokens"])):
        figs.append(figure(plots.histogram(g["latency"].get(model, []), f"{model}: latency (ms)", "latency_ms",
                                           f"{node.name}-latency", plotter), f"{model} latency histogram"))
        figs.append(figure(plots.histogram(g["tokens"].get(model, []), f"{model}: output tokens",
                                           "output_tokens", f"{node.name}-tokens", plotter),
                           f"{model} output tokens histogram"))
    parts += ["<h2>Latency and output tokens</h2>", "".join(figs) or '<p class="muted">(no rows yet)</p>',
              "<h2>Failure reasons</h2>",
              table(["model", "error", "rows"], [[e["model"], e["error"], e["rows"]] for e in g["errors"]]),
              "<h2>Cache keys and their settings</h2>",
              table(["settings fingerprint", "model", "generation kwargs", "cached rows", "ok", "used now"],
                    [[k["fingerprint"], k["model"], k["generation_kwargs"], k["rows"], k["ok"],
                      "yes" if k["in_use"] else "no (kept; 'kto-build prune' deletes)"] for k in g["cache_keys"]]),
              "<h2>Settings</h2>", _settings(node), _history(snap, node.name)]
    return "".join(parts)


# ------------------------------------------------------------- annotations
def positive_label(project, node) -> str:
    labels = [str(x) for x in getattr(node, "labels", [])]
    pos = project.vars.get("positive_label")
    return str(pos) if pos is not None and str(pos) in labels else (labels[0] if labels else "Yes")


def annotation_page(snap, node, plotter) -> tuple[str, dict]:
    a = collect.annotation_stats(snap, node)
    pairs = pairwise_kappa(a["answers"])
    parts = [common(snap, node),
             f"<p>backend <b>{escape(node.backend)}</b> · question <code>{escape(node.question)}</code> "
             f"({escape(', '.join(map(str, node.labels)))}) · complete = at least {node.min_submitted} submitted "
             f"answers</p>",
             table(["records", "pushed", "answered by someone", "complete"],
                   [[a["records"], a["pushed"] if node.backend == "argilla" else "(local backend)",
                     len({r for v in a["answers"].values() for r in v}), a["complete"]]]),
             "<h2>Progress</h2>", figure(plots.progress_lines(a["timeline"], f"{node.name}-progress", plotter),
                                         "records pushed, answered and complete over time"),
             "<h2>Answers per annotator</h2>",
             figure(plots.bars(a["per_annotator"], "annotator", "answers", "Answers per annotator",
                               f"{node.name}-annotators", plotter, colour="status"), "answers per annotator"),
             table(["annotator", "status", "answers"],
                   [[r["annotator"], r["status"], r["answers"]] for r in a["per_annotator"]]),
             "<h2>Agreement between annotators</h2>",
             figure(plots.kappa_heatmap(pairs, f"{node.name}-kappa", plotter), "pairwise Cohen's kappa heatmap"),
             table(["annotator", "other", "items both answered", "Cohen's kappa"],
                   [[p["a"], p["b"], p["items"], p["kappa"]] for p in pairs if p["a"] < p["b"]]),
             agreement_section(snap),
             _history(snap, node.name)]
    return "".join(parts), {"pairs": pairs, "stats": a}


def leaderboard_rows(snap, project) -> list[dict]:
    rows = []
    for node in project.nodes.values():
        if node.kind != "annotation":
            continue
        for r in collect.leaderboard(snap, node, positive_label(project, node)):
            lo, hi = wilson(r["up"], r["answers"])
            rows.append({"model": r["model"] if len([n for n in project.nodes.values() if n.kind == "annotation"])
                         == 1 else f"{r['model']} ({node.name})", "up_rate": r["up"] / r["answers"], "lo": lo,
                         "hi": hi, "answers": r["answers"], "up": r["up"]})
    return rows


# ------------------------------------------------------------------ exports
def export_numbers(snap, node) -> dict[str, Any]:
    """Label balance, DPO margins and rows per source, read from the exported model."""
    out: dict[str, Any] = {"balance": None, "margins": [], "sources": []}
    if snap.con is None or not snap.has(node.model):
        return out
    cols = snap.cols(node.model)
    q = f'"{node.model}"'
    if node.format == "kto" and cols.get("label") == "BOOLEAN":
        pos, neg = snap.q(f"SELECT count(*) FILTER (WHERE label), count(*) FILTER (WHERE NOT label) FROM {q}")[0]
        w = node.weights or {}
        out["balance"] = kto_balance(pos, neg, float(w.get("desirable_weight", 1.0)),
                                     float(w.get("undesirable_weight", 1.0)))
    if node.format == "dpo" and {"chosen_score", "rejected_score"} <= set(cols):
        out["margins"] = [float(r[0]) for r in snap.q(f"SELECT chosen_score - rejected_score FROM {q}")
                          if r[0] is not None]
    src = next((c for c in ("label_source", "source") if c in cols), None)
    if src:
        out["sources"] = [{"source": str(s), "rows": n} for s, n in snap.q(f'SELECT "{src}", count(*) FROM {q} '
                                                                           "GROUP BY 1 ORDER BY 1")]
    else:
        total = snap.q(f"SELECT count(*) FROM {q}")[0][0]
        out["sources"] = [{"source": "people", "rows": total}]
    return out


def export_page(snap, node, plotter, card_html: str | None) -> tuple[str, dict]:
    n = export_numbers(snap, node)
    parts = [common(snap, node), f"<p>{escape(node.format)} format from model "
             f"{link(node.model + '.html', node.model)}</p>"]
    b = n["balance"]
    if b is not None:
        parts += ["<h2>Label balance</h2>", figure(plots.label_balance(b, f"{node.name}-balance", plotter),
                                                   "label balance bar chart with TRL's 1:1 to 4:3 band"),
                  '<p class="muted">The grey band: the desirable counts for which (desirable_weight x desirable) : '
                  '(undesirable_weight x undesirable) lies in TRL\'s recommended 1:1 to 4:3, with the export\'s '
                  'weights.</p>',
                  table(["desirable", "undesirable", "weighted ratio", "in TRL's 1:1..4:3 band",
                         "suggested desirable_weight", "suggested undesirable_weight"],
                        [[b["desirable"], b["undesirable"], None if b["ratio"] is None else f"{b['ratio']:.3f}:1",
                          {True: "yes", False: "no", None: "n/a"}[b["in_band"]],
                          b["suggested"]["desirable_weight"], b["suggested"]["undesirable_weight"]]])]
    if node.format == "dpo":
        parts += ["<h2>DPO margins</h2>", figure(plots.histogram(n["margins"], "chosen_score - rejected_score",
                                                                 "margin", f"{node.name}-margins", plotter),
                                                 "DPO margin histogram") or '<p class="muted">(no scores)</p>']
    parts += ["<h2>Rows per source</h2>",
              figure(plots.bars(n["sources"], "source", "rows", "Rows per label source", f"{node.name}-sources",
                                plotter), "rows per source"),
              table(["source", "rows"], [[s["source"], s["rows"]] for s in n["sources"]])]
    parts += ["<h2>Dataset card</h2>", card_html or '<p class="muted">(no card written yet: kto-build run)</p>',
              _history(snap, node.name)]
    return "".join(parts), n


def render_card(text: str) -> str:
    body = text
    meta = ""
    if text.startswith("---\n") and "\n---\n" in text[4:]:
        meta, body = text[4:].split("\n---\n", 1)
    return (f'<div class="card"><pre>{escape(meta)}</pre>{markdown(body)}</div>' if meta
            else f'<div class="card">{markdown(body)}</div>')


def other_page(snap, node) -> str:
    return common(snap, node) + "<h2>Settings</h2>" + _settings(node) + _history(snap, node.name)
