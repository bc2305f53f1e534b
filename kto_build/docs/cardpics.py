"""Pictures for an export's dataset card: label balance and annotator agreement, as SVG files
written beside the card (the card embeds them by file name)."""

from __future__ import annotations

import re
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


#: the card pictures' file names (label_balance-<hash>.svg, agreement_<node>-<hash>.svg)
PICTURE = re.compile(r"^(label_balance|agreement_.+)-[0-9a-f]{16}\.svg$")


def push_pictures(folder, pictures, hub: dict) -> list[str]:
    """Upload the card's pictures beside README.md on the Hub, in one commit before the card's, so the card's
    relative image links resolve there; pictures of an earlier card that this one no longer shows are deleted
    in the same commit. ``hub``: the keyword arguments given to ``Dataset.push_to_hub`` (repo_id, token, ...).
    Returns the file names uploaded."""
    names = [name for _, name in pictures or [] if (Path(folder) / name).is_file()]
    if not names:
        return []
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    api = HfApi(token=hub.get("token"))
    repo, revision = hub["repo_id"], hub.get("revision")
    try:
        present = api.list_repo_files(repo, repo_type="dataset", revision=revision)
    except Exception:  # a listing failure only means nothing old is deleted
        present = []
    ops = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(Path(folder) / name)) for name in names]
    ops += [CommitOperationDelete(path_in_repo=p) for p in present if PICTURE.match(p) and p not in names]
    api.create_commit(repo, ops, repo_type="dataset", revision=revision,
                      commit_message=f"{hub.get('commit_message') or 'kto-build'}: dataset card pictures")
    return names
