"""The import graph of kto_build/, read with ``ast`` (no import runs).

Every import counts: module level, inside functions and under TYPE_CHECKING.
Rules: node kinds import nothing from the runner (their contract is in
nodes/base.py); the runner imports no node kind (nodes.base is the contract)
and no data-test code; nothing outside the CLI imports the CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "kto_build"


def module_name(path: Path, pkg: Path) -> str:
    parts = list(path.relative_to(pkg.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, pkg: Path) -> set[str]:
    """Every module ``path`` imports, absolute (``from .x import y`` also counts ``pkg.x.y``)."""
    mod = module_name(path, pkg)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)  # `from . import runner`
    return found


def graph(pkg: Path = PKG) -> dict[str, set[str]]:
    return {module_name(p, pkg): imports_of(p, pkg) for p in sorted(pkg.rglob("*.py"))}


def violations(g: dict[str, set[str]]) -> list[str]:
    def hits(mod: str, target: str) -> bool:
        return any(i == target or i.startswith(target + ".") for i in g[mod])

    bad = []
    for mod in g:
        if mod.startswith("kto_build.nodes") and hits(mod, "kto_build.runner"):
            bad.append(f"{mod} imports kto_build.runner (use kto_build.nodes.base)")
        is_cli = mod == "kto_build.cli" or mod.startswith("kto_build.commands")
        if not is_cli and hits(mod, "kto_build.cli"):
            bad.append(f"{mod} imports kto_build.cli")
    runner = g.get("kto_build.runner", set())
    for imp in sorted(runner):
        kind = imp.startswith("kto_build.nodes.") and imp.split(".")[2] not in ("base",)
        # `from .nodes.base import Node` also lists kto_build.nodes.base.Node: base is the contract
        if kind or imp.split(".")[:2] in (["kto_build", "checks"], ["kto_build", "datatests"]):
            bad.append(f"kto_build.runner imports {imp}")
    return bad


def test_import_rules_hold():
    g = graph()
    assert "kto_build.runner" in g and any(m.startswith("kto_build.nodes.") for m in g)
    assert violations(g) == []


def test_the_rules_can_fail(tmp_path):
    """The checker sees each kind of forbidden import, wherever it is written."""
    pkg = tmp_path / "kto_build"
    (pkg / "nodes").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "nodes" / "__init__.py").write_text("")
    (pkg / "nodes" / "base.py").write_text("")
    (pkg / "nodes" / "model.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..runner import NodeContext\n")
    (pkg / "runner.py").write_text(
        "from .nodes.base import Node\n"
        "def f():\n    from .checks import run_model_tests\n    from .nodes import model\n")
    (pkg / "project.py").write_text("def g():\n    import kto_build.cli\n")
    assert violations(graph(pkg)) == ["kto_build.nodes.model imports kto_build.runner (use kto_build.nodes.base)",
                   "kto_build.project imports kto_build.cli",
                   "kto_build.runner imports kto_build.checks",
                   "kto_build.runner imports kto_build.checks.run_model_tests",
                   "kto_build.runner imports kto_build.nodes.model"]
