"""``kto-build schema``: the JSON Schema of project.yml, sources.yml or models/*.yml, for editors."""

from __future__ import annotations

import json

import click

from . import internals
from .common import project_command

NAMES = ("project", "sources", "models")


@project_command()
@click.argument("name", type=click.Choice(NAMES), default="project")
def schema(obj, name):
    """Print the JSON Schema of project.yml, sources.yml or models/*.yml (NAME: project, sources or models).

    The schema is made from the same rules that check a project when it loads; editors use it to complete
    and check keys (see the README: yaml-language-server's '$schema' comment).
    """
    click.echo(json.dumps(internals.config_schema(name), indent=2))
