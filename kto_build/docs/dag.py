"""The DAG picture: grandalf's Sugiyama layout (layers, crossing reduction,
Brandes-Koepf coordinates), drawn as one inline SVG whose boxes link to the
node pages. Left to right, one colour per node kind.
"""

from __future__ import annotations

from html import escape

KIND_COLOURS = {"source": "#4e79a7", "generation": "#f28e2b", "judge": "#b07aa1", "annotation": "#e15759",
                "model": "#59a14f", "export": "#76b7b2"}
STATUS_MARK = {"built": "#2e7d32", "skipped": "#9e9e9e", "failed": "#c62828", "never built": "#ffffff"}
BOX_W, BOX_H, CHAR_W = 150, 40, 6.6


def _import_grandalf():
    """grandalf's geometry module imports numpy when it can (~0.5 s) though the Sugiyama layout never uses
    it; when nothing loaded numpy yet, grandalf gets its own pure-Python fallback instead."""
    import sys

    if "grandalf.layouts" in sys.modules or "numpy" in sys.modules:
        import grandalf.layouts
        return
    sys.modules["numpy"] = None  # type: ignore[assignment]  # makes ``import numpy`` raise ImportError
    try:
        import grandalf.layouts  # noqa: F401
    finally:
        del sys.modules["numpy"]


def _layout_class():
    _import_grandalf()
    from grandalf.layouts import SugiyamaLayout

    class FastSugiyama(SugiyamaLayout):
        """grandalf keeps alignment conflicts in a list and tests membership in it inside a
        loop over every layer: a set makes the 500-node layout ~6x faster, same result."""

        def _detect_alignment_conflicts(self):
            super()._detect_alignment_conflicts()
            self.conflicts = set(self.conflicts)

    return FastSugiyama


def _components(names: list[str], edges: list[tuple[str, str]]) -> list:
    """grandalf's connected components (``graph_core``) of the graph, in a fixed order.

    grandalf keeps vertices and edges in sets and dicts: hashed by id() (its default) their order, and so the
    picture, changed from one process to the next; hashed by their position in ``names`` the layout is the
    same in every process. The components are found here (union-find) rather than by grandalf's ``Graph``,
    whose constructor compares whole vertex sets per edge (quadratic: ~2 s for 500 models)."""
    from grandalf.graphs import Edge, Vertex, graph_core

    class _View:
        def __init__(self):
            self.w, self.h = BOX_H, BOX_W  # laid out top-down, then turned: width/height swap

    class _Vertex(Vertex):
        def __init__(self, data, order):
            super().__init__(data)
            self.order, self.view = order, _View()

        def __hash__(self):
            return self.order

    class _Edge(Edge):
        def __hash__(self):
            return hash((self.v[0].order, self.v[1].order))

    index = {n: i for i, n in enumerate(names)}
    parent = list(range(len(names)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pairs = [(index[a], index[b]) for a, b in edges if a in index and b in index]
    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    vs = [_Vertex(n, i) for i, n in enumerate(names)]
    groups: dict[int, tuple[list, list]] = {}
    for i, v in enumerate(vs):
        groups.setdefault(root(i), ([], []))[0].append(v)
    for a, b in pairs:
        groups[root(a)][1].append(_Edge(vs[a], vs[b]))
    return [graph_core(members, links) for members, links in groups.values()]


def layout(names: list[str], edges: list[tuple[str, str]]) -> dict[str, tuple[float, float]]:
    """Node centre coordinates (x to the right = downstream), per connected component stacked vertically."""
    _import_grandalf()
    components = _components(names, edges)
    sugiyama = _layout_class()
    pos: dict[str, tuple[float, float]] = {}
    offset = 0.0
    for comp in sorted(components, key=lambda c: -len(c.sV)):
        lay = sugiyama(comp)
        lay.xspace, lay.yspace = 14, 50
        lay.init_all()
        lay.draw(1)
        pts = {v.data: v.view.xy for v in comp.sV}
        min_x = min(x for x, _ in pts.values())
        max_x = max(x for x, _ in pts.values())
        for name, (x, y) in pts.items():
            pos[name] = (y, x - min_x + offset)  # rank -> horizontal, order -> vertical
        offset += max_x - min_x + BOX_H + 20
    return pos


def svg(names: list[str], edges: list[tuple[str, str]], info: dict[str, dict], href, pos=None) -> str:
    """An inline SVG: every node a link to ``href(name)``, filled by kind, ringed by last status.

    ``pos``: the ``layout()`` of these names and edges, when the caller has it cached."""
    pos = pos if pos is not None else layout(names, edges)
    if not pos:
        return "<p>No nodes.</p>"
    pad = 10
    min_x = min(x for x, _ in pos.values()) - BOX_W / 2 - pad
    min_y = min(y for _, y in pos.values()) - BOX_H / 2 - pad
    width = max(x for x, _ in pos.values()) + BOX_W / 2 + pad - min_x
    height = max(y for _, y in pos.values()) + BOX_H / 2 + pad - min_y
    out = [f'<svg class="dag" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="{min_x:.0f} {min_y:.0f} {width:.0f} {height:.0f}" role="img" aria-label="lineage graph">']
    out.append('<g class="edges" fill="none" stroke="#888" stroke-width="1.2">')
    for a, b in edges:
        if a in pos and b in pos:
            (x1, y1), (x2, y2) = pos[a], pos[b]
            x1, x2 = x1 + BOX_W / 2, x2 - BOX_W / 2
            mid = (x1 + x2) / 2
            out.append(f'<path d="M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"/>')
    out.append("</g>")
    for name in names:
        x, y = pos[name]
        d = info.get(name, {})
        fill = KIND_COLOURS.get(d.get("kind", ""), "#bab0ac")
        ring = STATUS_MARK.get(d.get("status", "never built"), "#9e9e9e")
        label = name if len(name) * CHAR_W <= BOX_W - 10 else name[: int((BOX_W - 16) / CHAR_W)] + "…"
        rows = d.get("rows")
        sub = f"{d.get('kind', '')} · {d.get('status', 'never built')}" + (f" · {rows:,} rows" if rows is not None
                                                                          else "")
        title = escape(f"{name}: {sub}")
        out.append(f'<a href="{escape(href(name))}" class="dag-node" data-node="{escape(name)}">'
                   f"<title>{title}</title>"
                   f'<rect x="{x - BOX_W / 2:.1f}" y="{y - BOX_H / 2:.1f}" width="{BOX_W}" height="{BOX_H}" rx="5" '
                   f'fill="{fill}" stroke="{ring}" stroke-width="3"/>'
                   f'<text x="{x:.1f}" y="{y - 3:.1f}" text-anchor="middle" class="n">{escape(label)}</text>'
                   f'<text x="{x:.1f}" y="{y + 12:.1f}" text-anchor="middle" class="s">'
                   f"{escape(sub[:34])}</text></a>")
    out.append("</svg>")
    return "".join(out)


def layout_lists(names: list[str], edges: list[tuple[str, str]]) -> dict[str, list[float]]:
    """``layout()`` with lists for coordinates (what the docs cache stores as JSON)."""
    return {n: list(xy) for n, xy in layout(names, edges).items()}


def start_layout(names: list[str], edges: list[tuple[str, str]], fork_above: int = 60):
    """Start laying out a large graph in a forked process (grandalf is pure Python: a second process lays
    out while this one writes the node pages); ``.result()`` gives ``layout_lists``. Small graphs, or a
    platform without fork, lay out in this process when the result is asked for."""
    from .forked import Forked, forked

    if len(names) < fork_above:
        return Forked(layout_lists, (names, edges))
    return forked(layout_lists, names, edges)
