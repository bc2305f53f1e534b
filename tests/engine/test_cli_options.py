"""One CLI: no module imports kto_build.cli (the commands import kto_build.commands.common), and the shared
options work the same before and after the command name."""

from __future__ import annotations

from tests.engine.test_layout import _all, graph


def test_no_module_imports_the_cli():
    g = graph()
    importers = sorted(m for m, imports in g.items()
                       if any(i == "kto_build.cli" or i.startswith("kto_build.cli.") for i in _all(imports)))
    assert importers == []
    assert any(i.startswith("kto_build.commands.common") for i in _all(g["kto_build.commands.build"]))


def test_command_options_win_over_group_options(proj):
    assert "(target dev)" in proj.cli("-t", "dev", "plan").output
    assert "(target prod)" in proj.cli("-t", "dev", "plan", "-t", "prod").output
    assert "(target prod)" in proj.cli("plan", "--target", "prod").output


def test_vars_from_group_and_command_merge(proj):
    both = ["--vars", "{min_len: 7, suffix: '!'}", "compile", "{model}", "--vars", "{suffix: '?'}"]
    stg = proj.cli(*[a.replace("{model}", "stg_prompts") for a in both])
    shouty = proj.cli(*[a.replace("{model}", "shouty") for a in both])
    assert stg.exit_code == 0 and 'SET VARIABLE "min_len" = 7;' in stg.output, stg.output
    assert shouty.exit_code == 0 and "SET VARIABLE \"suffix\" = '?';" in shouty.output, shouty.output
