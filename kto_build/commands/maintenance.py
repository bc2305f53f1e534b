"""``kto-build prune``: the explicit command that deletes cached generations."""

from __future__ import annotations

import click

from . import internals
from .common import load_project, project_command


@project_command()
@click.option("--yes", is_flag=True, help="Delete them (without it, only list what would be deleted).")
def prune(obj, yes):
    """Delete cached generations whose settings no generator uses in any target."""
    groups = internals.prune_generations(load_project(obj), apply=yes)
    if not groups:
        click.echo("Nothing to prune: every cached generation belongs to settings in use.")
        return
    for g in groups:
        click.echo(f"{g['generator']} / {g['model_name']} (settings {g['model_fingerprint']}): "
                   f"{g['rows']} rows, {g['ok_rows']} paid-for completions")
    total = sum(g["rows"] for g in groups)
    if yes:
        click.echo(f"Deleted {total} cached generations.")
    else:
        click.echo(f"{total} cached generations would be deleted; run 'kto-build prune --yes' to delete them.")

