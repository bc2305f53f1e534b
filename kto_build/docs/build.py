"""``build_site(project, out)``: read one consistent snapshot, write the static site.

Layout of the output folder (everything a page references is in it)::

    index.html  site.css  pygments.css  favicon.svg
    nodes/<node>.html     one page per node
    img/<chart>-<hash>.svg   charts (Vega-Altair -> vl-convert), reused while their spec is unchanged
"""

from __future__ import annotations

import os
import shutil
import time
from html import escape
from pathlib import Path

from . import collect, pages, plots
from .cache import DocsCache, key
from .dag import KIND_COLOURS, STATUS_MARK, start_layout
from .dag import svg as dag_svg
from .html import CSS, FAVICON, figure, link, page, pygments_css, table


def build_site(project, out: str | Path | None = None) -> dict:
    """Write the site; returns {out, pages, charts, rendered, seconds}."""
    t0 = time.monotonic()
    out = Path(out) if out else project.target_dir / "docs"
    out = out if out.is_absolute() else project.root / out
    (out / "nodes").mkdir(parents=True, exist_ok=True)
    plotter = plots.Plotter(out / "img")
    written: list[str] = []
    cache = DocsCache(out / ".cache.json")
    edges = [(p, n) for n in project.graph.order for p in project.graph.parents[n]]
    layout_key = key(project.graph.order, edges)
    job = None if f"layout:{layout_key}" in cache.old else start_layout(project.graph.order, edges)
    with collect.read_only(project) as con:
        snap = collect.snapshot(project, con)
        snap.cache = cache
        snap.plotter = _Rel(plotter, "../img/")
        elsewhere = start_model_pages(snap, [project.nodes[n] for n in project.graph.order], out)
        extra = {name: _page(snap, project.nodes[name], out, plotter) for name in project.graph.order
                 if name not in elsewhere.names}
        extra.update(elsewhere.finish(snap))
        extra = {name: extra[name] for name in project.graph.order}
        written += [f"nodes/{name}.html" for name in project.graph.order]
        index = _index(snap, plotter, edges, lambda: snap.cache.get("layout", layout_key, lambda: job.result()))
    plotter.flush()
    _write(out / "index.html", page(project.name, index, "", project.name))
    _write(out / "site.css", CSS)
    _write(out / "pygments.css", pygments_css())
    _write(out / "favicon.svg", FAVICON)
    _prune(out, written, plotter)
    cache.save()
    return {"out": str(out), "pages": len(written) + 1, "pages_forked": elsewhere.forked,
            "charts": len(set(plotter.written)),
            "rendered": plotter.rendered, "seconds": round(time.monotonic() - t0, 3), "figures": extra}


def _write(path: Path, text: str) -> None:
    """Atomically, and only when the content changed (a rebuild of an unchanged project writes nothing)."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except OSError:
        pass
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _prune(out: Path, pages_written: list[str], plotter: plots.Plotter) -> None:
    """Drop pages of nodes that are gone and charts no page uses any more."""
    keep = {Path(p).name for p in pages_written}
    for f in (out / "nodes").glob("*.html"):
        if f.name not in keep:
            f.unlink()
    used = set(plotter.written)
    if (out / "img").is_dir():
        for f in (out / "img").glob("*.svg"):
            if f.name not in used:
                f.unlink()


def _node_body(snap, node, plotter, out: Path) -> tuple[str, dict]:
    kind = node.kind
    if kind == "model":
        lineage = column_lineage(snap, node)
        tests = data_tests(snap, node)
        return pages.model_page(snap, node, lineage, tests), {"tests": tests}
    p = _Rel(plotter, "../img/")
    if kind == "generation":
        return pages.generation_page(snap, node, p), {}
    if kind == "judge":
        from .judge import judge_page

        return judge_page(snap, node, p)
    if kind == "annotation":
        return pages.annotation_page(snap, node, p)
    if kind == "export":
        return pages.export_page(snap, node, p, _card(node, out))
    return pages.other_page(snap, node), {}


class _Rel:
    """A Plotter whose returned names are relative to the page that shows them."""

    def __init__(self, plotter, prefix: str):
        self.plotter, self.prefix = plotter, prefix

    def lazy(self, stem: str, parts, build) -> str:
        return self.prefix + self.plotter.lazy(stem, parts, build)


def _card(node, out: Path) -> str | None:
    """The export's README.md rendered; its pictures copied into the site (img/cards/<export>/)."""
    path = Path(node.out_dir) / "README.md"
    if not path.exists():
        return None
    html = pages.render_card(path.read_text(encoding="utf-8"))
    dest = out / "img" / "cards" / node.name
    for pic in sorted(Path(node.out_dir).glob("*.svg")):
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pic, dest / pic.name)
        html = html.replace(f'src="{pic.name}"', f'src="../img/cards/{node.name}/{pic.name}"')
    return html


# ------------------------------------------------------------ models
def _lineage_args(snap, node) -> tuple | None:
    """(cache key, sql, columns, parents' schema) of a model's column lineage; None when it has none."""
    if node.name not in snap.lineage_args:
        snap.lineage_args[node.name] = _compute_lineage_args(snap, node)
    return snap.lineage_args[node.name]


def _compute_lineage_args(snap, node) -> tuple | None:
    cols = list(snap.cols(node.name))
    if not cols or snap.con is None:
        return None
    schema = {p: {c: t for c, t in snap.columns.get(p, [])} for p in node.depends_on if snap.has(p)}
    for alias in {r.name for r in getattr(node, "references", [])} - set(schema):
        if snap.has(alias):
            schema[alias] = dict(snap.columns.get(alias, []))
    return key(node.sql, cols, schema), node.sql, cols, schema


def column_lineage(snap, node) -> dict[str, list[dict]]:
    """Per column, the parent columns it comes from (one level: the parents' pages go on from there)."""
    from .lineage import model_lineage

    args = _lineage_args(snap, node)
    if args is None:
        return {}
    k, sql, cols, schema = args
    return snap.cache.get("lineage", k, lambda: model_lineage(sql, cols, schema))


def _page(snap, node, out: Path, plotter=None) -> dict:
    """Write the node's page; returns its figures."""
    body, extra = _node_body(snap, node, plotter, out)
    _write(out / "nodes" / f"{node.name}.html", page(f"{node.kind} {node.name}", body, "../", snap.project.name))
    return extra


def _offline(snap, node) -> bool:
    """A model page that needs nothing from the database connection (its data tests, if any, come from the
    last run's results): a forked process can render it from the snapshot alone."""
    if node.kind != "model":
        return False
    res = snap.last_result(node.name)
    return bool(res and res.get("tests")) or not (node.tests or node.columns)


class _Pages:
    """Model pages being written by a forked process (docs/forked.py): ``finish`` waits for it, takes its build
    cache entries and figures. Where fork is missing or the child fails, ``finish`` writes them here."""

    def __init__(self, names: list[str] = (), job=None):
        self.names, self.job = set(names), job

    def finish(self, snap) -> dict[str, dict]:
        if self.job is None:
            return {}
        entries, extra, charts = self.job.result()
        snap.cache.new.update(entries)
        if charts is not None:
            plots.Deferred.take(snap.plotter.plotter, charts)
        return extra

    @property
    def forked(self) -> int:
        """How many pages the forked process wrote."""
        return len(self.names) if self.job is not None and not self.job.computed_here else 0


def _model_pages(snap, names: list[str], out: Path) -> tuple[dict, dict, tuple | None]:
    """(build cache entries, figures per node, charts for the parent's Plotter: ``plots.Deferred``) after writing
    these model pages: in the forked process, or here as its fallback."""
    before = set(snap.cache.new)
    rel = snap.plotter
    deferred = plots.Deferred(rel.plotter) if rel is not None else None
    snap.plotter = _Rel(deferred, rel.prefix) if rel is not None else None
    try:
        extra = {name: _page(snap, snap.project.nodes[name], out) for name in names}
    finally:
        snap.plotter = rel
    return ({k: v for k, v in snap.cache.new.items() if k not in before}, extra,
            deferred.result() if deferred is not None else None)


#: a cold build with at least this many model pages to compute forks a second process for half of them
FORK_ABOVE = 60


def start_model_pages(snap, nodes, out: Path) -> _Pages:
    """A cold build of a large project: the later half of the model pages with something to compute (lineage:
    one sqlglot parse per model, the largest cost of a cold build; highlighting) is written by a forked
    process while this one writes the rest. Same pages as writing them here (tests/docs)."""
    from .forked import forked
    from .lineage import warm_up

    todo = [n.name for n in nodes if _offline(snap, n) and _uncached(snap, n)]
    if len(todo) < FORK_ABOVE:
        return _Pages()
    warm_up()  # imported once, here, and inherited by the child: not once in each process (~0.6 s of CPU)
    later = todo[len(todo) // 2:]
    return _Pages(later, forked(_model_pages, snap, later, out))


def _uncached(snap, node) -> bool:
    args = _lineage_args(snap, node)
    return args is not None and snap.cache.missing("lineage", args[0])


def data_tests(snap, node) -> list[dict]:
    """The model's data tests: the last run's results when it built in that run, else run now on the stored table
    (read-only, as ``kto-build test`` does)."""
    res = snap.last_result(node.name)
    if res and res.get("tests"):
        return res["tests"]
    if not (node.tests or node.columns) or snap.con is None or not snap.has(node.name):
        return []
    from ..datatests import compile_tests, execute

    tests = compile_tests(node, snap.project.nodes)
    if not tests:
        return []
    return [r.as_dict() for r in execute(snap.con, tests, {node.name: list(snap.cols(node.name))})]


# ------------------------------------------------------------- index
def _index(snap, plotter, edges, positions) -> str:
    project = snap.project
    info = {n: collect.node_status(snap, n) for n in project.graph.order}
    legend = "".join(f'<span style="background:{c}">{k}</span>' for k, c in KIND_COLOURS.items())
    rings = " ".join(f'<span style="background:#fff;color:#222;border:3px solid {c}">{k}</span>'
                     for k, c in STATUS_MARK.items())
    parts = [f"<p>{escape(str(project.config.get('description') or ''))}</p>",
             f'<p class="legend">kinds: {legend}<br>last status (border): {rings}</p>',
             '<div class="dagbox">', dag_svg(project.graph.order, edges, info, pages.href,
                                                {n: tuple(xy) for n, xy in positions().items()}),
             "</div>"]
    board = pages.leaderboard_rows(snap, project)
    if board:
        parts += ["<h2>Model leaderboard</h2>", figure(plots.leaderboard(board, "leaderboard",
                                                                         _Rel(plotter, "img/")),
                                                       "up rate per generator model with 95% interval"),
                  table(["model", "thumbs up", "answers", "up rate", "95% low", "95% high"],
                        [[r["model"], r["up"], r["answers"], r["up_rate"], r["lo"], r["hi"]] for r in board])]
    parts += _run_summary(snap)
    parts += ["<h2>Target and vars</h2>", f"<p>target <b>{escape(project.target)}</b>, database "
              f"<code>{escape(project.database().display)}</code></p>",
              table(["var", "value"], [[k, repr(v)] for k, v in sorted(project.vars.items())]),
              '<h2 id="nodes">Nodes</h2>',
              table(["node", "kind", "status", "rows", "description"],
                    [[link(pages.href(n), n), escape(info[n]["kind"]), escape(info[n]["status"]), info[n]["rows"],
                      escape(project.nodes[n].description or "")] for n in project.graph.order], raw={0, 1, 2, 4})]
    return "".join(parts)


def _run_summary(snap) -> list[str]:
    rr = snap.run_results
    parts = ["<h2>Last run</h2>"]
    if rr:
        counts: dict[str, int] = {}
        for n in rr.get("nodes", []):
            counts[n.get("status", "?")] = counts.get(n.get("status", "?"), 0) + 1
        meta = rr.get("metadata", {})
        parts.append(f"<p>run <code>{escape(str(meta.get('run_id')))}</code> at {escape(str(meta.get('generated_at')))}"
                     f" (target {escape(str(meta.get('target')))}): {rr.get('elapsed_seconds')} s, "
                     + ", ".join(f"{v} {escape(k)}" for k, v in sorted(counts.items())) + "</p>")
        parts.append(table(["node", "kind", "status", "rows", "seconds", "message"],
                           [[link(pages.href(n["name"]), n["name"]), escape(n.get("kind", "")),
                             escape(n.get("status", "")), n.get("rows"), n.get("seconds"),
                             escape(n.get("message") or "")] for n in rr.get("nodes", [])], raw={0, 1, 2, 5}))
    else:
        parts.append('<p class="muted">No run yet (target/run_results.json is missing).</p>')
    parts += ['<h2 id="runs">Runs</h2>', table(["started", "finished", "target", "built", "skipped", "failed"], [
        [str(r["started_at"]), str(r["finished_at"]), r["target"], r["built"], r["skipped"], r["failed"]]
        for r in snap.runs])]
    return parts
