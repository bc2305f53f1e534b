"""Charts: Vega-Altair specs rendered to static SVG files by vl-convert at build time.

Each chart is written as ``img/<stem>-<hash of its function and data>.svg``: a
rebuild whose data did not change reuses the file without importing altair,
building the spec or rendering it again. Altair and vl-convert are imported
only when a chart is missing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .stats import TRL_BAND, band_counts

WIDTH = 420
#: bump when a chart function draws differently: file names change, old files are pruned
VERSION = 2


class Plotter:
    """Renders charts into ``folder`` and returns their file names.

    A chart's file name holds a hash of what it is drawn from (the plot function, its data and
    VERSION), so an unchanged chart is found without importing altair or building its spec.
    A missing chart's spec is built at once (altair, in this thread) and rendered by vl-convert in
    a few worker threads while the pages are written (vl-convert renders concurrently); ``flush()``
    waits for them and raises the first error."""

    def __init__(self, folder: Path, threads: int = 3):
        self.folder = Path(folder)
        self.written: list[str] = []
        self.rendered = 0
        self.threads = threads
        self.pending: dict = {}
        self._pool = None

    def lazy(self, stem: str, parts, build) -> str:
        """The file name of the chart ``build()`` makes from ``parts``; built and queued only when missing."""
        name = self.name(stem, parts)
        if self.missing(name):
            self.queue(name, build().to_dict(validate=False))  # vl-convert checks it; altair's check costs ~50 ms
        self.written.append(name)
        return name

    @staticmethod
    def name(stem: str, parts) -> str:
        digest = hashlib.sha256(json.dumps([VERSION, parts], sort_keys=True,
                                           default=str).encode()).hexdigest()[:16]
        return f"{stem}-{digest}.svg"

    def missing(self, name: str) -> bool:
        return name not in self.pending and not (self.folder / name).exists()

    def queue(self, name: str, spec: dict) -> None:
        """Render ``spec`` to ``name`` in a worker thread."""
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self.folder.mkdir(parents=True, exist_ok=True)
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="vl-convert")
        self.pending[name] = self._pool.submit(self._render, name, spec)

    def _render(self, name: str, spec: dict) -> None:
        import vl_convert

        tmp = self.folder / f".{name}.tmp"
        tmp.write_text(vl_convert.vegalite_to_svg(spec), encoding="utf-8")
        tmp.replace(self.folder / name)

    def flush(self) -> None:
        """Wait for the queued charts (each file written atomically)."""
        if self._pool is None:
            return
        try:
            for future in self.pending.values():
                future.result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self.rendered += len(self.pending)
        self.pending.clear()


def _alt():
    import altair as alt

    return alt


def histogram(values: list[float], title: str, field: str, stem: str, plotter: Plotter) -> str | None:
    if not values:
        return None
    values = sorted(values)  # a histogram does not depend on row order: neither may its file name

    def build():
        alt = _alt()
        data = alt.Data(values=[{field: v} for v in values])
        return alt.Chart(data, title=title, width=WIDTH, height=160).mark_bar().encode(
            x=alt.X(f"{field}:Q", bin=alt.Bin(maxbins=30), title=field),
            y=alt.Y("count():Q", title="rows"))

    return plotter.lazy(stem, ["histogram", values, title, field], build)


def bars(rows: list[dict], x: str, y: str, title: str, stem: str, plotter: Plotter, colour: str | None = None,
         horizontal: bool = True) -> str | None:
    if not rows:
        return None

    def build():
        alt = _alt()
        data = alt.Data(values=rows)
        mark = alt.Chart(data, title=title, width=WIDTH, height=max(60, 22 * len(rows)) if horizontal else 200)
        enc = {"tooltip": [f"{x}:N", f"{y}:Q"]}
        if colour:
            enc["color"] = alt.Color(f"{colour}:N")
        if horizontal:
            chart = mark.mark_bar().encode(y=alt.Y(f"{x}:N", sort=None, title=None), x=alt.X(f"{y}:Q", title=y),
                                           **enc)
        else:
            chart = mark.mark_bar().encode(x=alt.X(f"{x}:N", sort=None, title=None), y=alt.Y(f"{y}:Q", title=y),
                                           **enc)
        text = chart.mark_text(align="left" if horizontal else "center", dx=3 if horizontal else 0,
                               dy=0 if horizontal else -6).encode(text=f"{y}:Q")
        return chart + text

    return plotter.lazy(stem, ["bars", rows, x, y, title, colour, horizontal], build)


def label_balance(balance: dict, stem: str, plotter: Plotter) -> str:
    """Desirable / undesirable counts, with the desirable range TRL's 1:1..4:3 band allows shaded."""
    pos, neg = balance["desirable"], balance["undesirable"]
    dw, uw = balance["desirable_weight"], balance["undesirable_weight"]

    def build():
        alt = _alt()
        rows = [{"label": "desirable (true)", "rows": pos}, {"label": "undesirable (false)", "rows": neg}]
        base = alt.Chart(alt.Data(values=rows), title="Label balance", width=WIDTH, height=90)
        bar = base.mark_bar().encode(y=alt.Y("label:N", sort=None, title=None), x=alt.X("rows:Q", title="rows"),
                                     color=alt.Color("label:N", legend=None,
                                                     scale=alt.Scale(range=["#59a14f", "#e15759"])))
        text = base.mark_text(align="left", dx=3).encode(y=alt.Y("label:N", sort=None), x="rows:Q", text="rows:Q")
        layers = [bar, text]
        if neg:
            lo, hi = band_counts(pos, neg, dw, uw)
            band = alt.Chart(alt.Data(values=[{"lo": lo, "hi": hi, "label": "desirable (true)",
                                               "band": f"TRL {TRL_BAND[0]:g}:1 to 4:3"}])).mark_rect(
                opacity=0.25, color="#333").encode(x="lo:Q", x2="hi:Q", y=alt.Y("label:N", sort=None),
                                                   tooltip=["band:N", "lo:Q", "hi:Q"])
            layers.insert(0, band)
        return alt.layer(*layers)

    return plotter.lazy(stem, ["label_balance", pos, neg, dw, uw], build)


def kappa_heatmap(pairs: list[dict], stem: str, plotter: Plotter) -> str | None:
    if not pairs:
        return None

    def build():
        alt = _alt()
        rows = [{**p, "kappa_text": "n/a" if p["kappa"] is None else f"{p['kappa']:.2f}"} for p in pairs]
        side = 40 * max(4, len({p["a"] for p in pairs}))
        base = alt.Chart(alt.Data(values=rows), title="Cohen's kappa", width=side, height=side)
        heat = base.mark_rect().encode(x=alt.X("a:N", title=None), y=alt.Y("b:N", title=None),
                                       color=alt.Color("kappa:Q", scale=alt.Scale(domain=[-1, 1], scheme="redblue")),
                                       tooltip=["a:N", "b:N", "kappa:Q", "items:Q"])
        text = base.mark_text(fontSize=11).encode(x="a:N", y="b:N", text="kappa_text:N")
        return heat + text

    return plotter.lazy(stem, ["kappa_heatmap", pairs], build)


def progress_lines(rows: list[dict], stem: str, plotter: Plotter) -> str | None:
    """rows: {time, series, count} for pushed / answered / complete over time."""
    if not rows:
        return None

    def build():
        alt = _alt()
        return alt.Chart(alt.Data(values=rows), title="Records over time", width=WIDTH, height=180).mark_line(
            point=True, interpolate="step-after").encode(
            x=alt.X("time:T", title=None), y=alt.Y("count:Q", title="records"),
            color=alt.Color("series:N", title=None))

    return plotter.lazy(stem, ["progress_lines", rows], build)


def leaderboard(rows: list[dict], stem: str, plotter: Plotter) -> str | None:
    """rows: {model, up_rate, lo, hi, answers}: points with their 95 % Wilson intervals."""
    if not rows:
        return None

    def build():
        alt = _alt()
        base = alt.Chart(alt.Data(values=rows), title="Up rate per generator model (95 % Wilson interval)",
                         width=WIDTH, height=max(60, 30 * len(rows)))
        y = alt.Y("model:N", sort=alt.SortField("up_rate", order="descending"), title=None)
        rule = base.mark_rule(strokeWidth=2).encode(y=y, x=alt.X("lo:Q", scale=alt.Scale(domain=[0, 1]),
                                                                title="share of thumbs up"), x2="hi:Q")
        point = base.mark_point(filled=True, size=70).encode(y=y, x="up_rate:Q",
                                                             tooltip=["model:N", "up_rate:Q", "lo:Q", "hi:Q",
                                                                      "answers:Q"])
        return rule + point

    return plotter.lazy(stem, ["leaderboard", rows], build)


class Deferred:
    """A Plotter's stand-in in a forked process (docs/forked.py): names charts as the Plotter does and builds
    the missing ones' specs, which the parent's Plotter renders (``take``). The child inherits the parent's
    thread pool object but not its threads, so it must not render there itself."""

    def __init__(self, plotter: Plotter):
        self.plotter = plotter
        self.specs: dict[str, dict] = {}
        self.written: list[str] = []

    def lazy(self, stem: str, parts, build) -> str:
        name = self.plotter.name(stem, parts)
        if name not in self.specs and self.plotter.missing(name):
            self.specs[name] = build().to_dict(validate=False)
        self.written.append(name)
        return name

    def result(self) -> tuple[dict, list]:
        return self.specs, self.written

    @staticmethod
    def take(plotter: Plotter, result: tuple[dict, list]) -> None:
        """In the parent: queue what the child named and did not find."""
        specs, written = result
        for name, spec in specs.items():
            if plotter.missing(name):
                plotter.queue(name, spec)
        plotter.written += written


def build_history(rows: list[dict], stem: str, plotter: Plotter) -> str | None:
    """rows: {finished_at, seconds, rows} of a node's last builds: seconds per build, oldest first."""
    if len(rows) < 2:
        return None

    def build():
        alt = _alt()
        data = [{"finished_at": str(r["finished_at"]), "seconds": r["seconds"], "rows": r["rows"],
                 "status": r.get("status") or "built"} for r in rows]
        base = alt.Chart(alt.Data(values=data), title="Seconds per build", width=WIDTH, height=90).encode(
            x=alt.X("finished_at:T", title=None), y=alt.Y("seconds:Q", title="seconds"))
        points = base.mark_point(filled=True).encode(
            color=alt.Color("status:N", scale=alt.Scale(domain=["built", "tests failed", "failed"],
                                                        range=["#2e7d32", "#ef6c00", "#c62828"])),
            tooltip=["finished_at:T", "status:N", "seconds:Q", "rows:Q"])
        return base.mark_line(color="#888") + points

    return plotter.lazy(stem, ["build_history", [[str(r["finished_at"]), r["seconds"], r["rows"], r.get("status")]
                                                 for r in rows]], build)
