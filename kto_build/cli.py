"""The ``kto-build`` command line: parse arguments, call Project, print.

The commands live in ``kto_build/commands/`` (by topic) and are listed in ``COMMANDS`` below; a command's
module is imported only when that command runs (``--help`` imports them all, for their one-line help). No
module imports this one. Stays light: ``--help``, ``ls``, ``plan`` and a no-op ``run`` import click, yaml,
duckdb, never distilabel, argilla, datasets or ray.
"""

from __future__ import annotations

import importlib

import click

from . import __version__
from .commands.common import project_options

#: command name -> (module in kto_build/commands, function): the whole command line, in one table
COMMANDS = {
    "run": ("build", "run"),
    "plan": ("build", "plan"),
    "ls": ("build", "ls_cmd"),
    "compile": ("build", "compile_cmd"),
    "show": ("build", "show"),
    "lineage": ("build", "lineage"),
    "init": ("build", "init"),
    "test": ("quality", "test_cmd"),
    "export": ("quality", "export_cmd"),
    "annotate": ("annotations", "annotate"),
    "status": ("annotations", "status"),
    "docs": ("docs", "docs"),
    "prune": ("maintenance", "prune"),
    "schema": ("schema", "schema"),
}


class LazyGroup(click.Group):
    """A click group that imports a command's module when the command is looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, attr = COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(f"kto_build.commands.{module}"), attr), cmd_name)
        return self.commands.get(cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kto-build")
@project_options
@click.pass_context
def cli(ctx):
    """Declarative builds for KTO / DPO preference datasets."""
    ctx.ensure_object(dict)


def main():  # console-script entry point
    cli()


if __name__ == "__main__":
    main()
