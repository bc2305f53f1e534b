"""``kto-build prune``: the explicit command that deletes cached generations."""

from __future__ import annotations

import click

from ..cli import friendly, load_project, project_options


@click.command()
@click.option("--yes", is_flag=True, help="Delete them (without it, only list what would be deleted).")
@project_options
@click.pass_obj
@friendly
def prune(obj, target, vars_, yes):
    """Delete cached generations whose settings no generator uses in any target."""
    from ..prune import prune_generations

    groups = prune_generations(load_project(obj), apply=yes)
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


COMMANDS = [prune]
