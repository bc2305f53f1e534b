"""Pictures for an export's dataset card: label balance and annotator agreement, as SVG files
written beside the card (the card embeds them by file name)."""

from __future__ import annotations

from pathlib import Path

from . import collect, pages, plots
from .stats import pairwise_kappa


def card_pictures(con, project, node, folder) -> list[tuple[str, str]]:
    """Render the export's plots into ``folder``; returns [(alt text, file name)] in card order.

    ``con`` is an open connection to the project database (the export's own).
    Files are named by their content, so an unchanged export rewrites nothing.
    """
    folder = Path(folder)
    snap = collect.snapshot(project, con)
    plotter = plots.Plotter(folder)
    out: list[tuple[str, str]] = []
    numbers = pages.export_numbers(snap, node)
    if numbers["balance"] is not None:
        out.append(("Label balance with TRL's 1:1 to 4:3 band",
                    plots.label_balance(numbers["balance"], "label_balance", plotter)))
    upstream = project.graph.ancestors(node.model) | {node.model}
    for name in sorted(upstream):
        ann = project.nodes[name]
        if ann.kind != "annotation":
            continue
        pairs = pairwise_kappa(collect.annotation_stats(snap, ann)["answers"])
        if any(p["a"] != p["b"] for p in pairs):
            out.append((f"Agreement between annotators of {name} (pairwise Cohen's kappa)",
                        plots.kappa_heatmap(pairs, f"agreement_{name}", plotter)))
    plotter.flush()
    keep = {f for _, f in out}
    for old in folder.glob("*.svg"):  # pictures of an earlier card that this one no longer has
        if old.name not in keep and (old.name.startswith("label_balance") or old.name.startswith("agreement_")):
            old.unlink()
    return out
