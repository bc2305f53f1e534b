"""``kto-build test``: a project's data tests run on its stored tables."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..datatests import TestResult, columns_of, compile_tests, execute
from ..errors import KtoBuildError
from ..nodes.model import ModelNode
from ..state import relations

if TYPE_CHECKING:
    from ..project import Project


def run_tests(project: Project, select=None, exclude=None) -> list[TestResult]:
    """``kto-build test``: run the data tests of the selected models on the stored tables."""
    names = [n for n in project.graph.select(select, exclude) if isinstance(project.nodes[n], ModelNode)]
    compiled = {n: compile_tests(project.nodes[n], project.nodes) for n in names}  # all bad specs fail first
    db = project.database()
    results: list[TestResult] = []
    if not any(compiled.values()):
        return results
    if not db.exists():
        raise KtoBuildError(f"{db.display} does not exist yet (run 'kto-build run' first)")
    with db.connect(read_only=True) as con:
        rels = relations(con)
        for name in names:
            tests = compiled[name]
            if not tests:
                continue
            if name not in rels:
                for t in tests:
                    results.append(TestResult(t.name, name, t.severity, "error", 0, "",
                                              f"'{name}' has not been built yet (run 'kto-build run')",
                                              t.path, t.line))
                continue
            results.extend(execute(con, tests, {name: columns_of(con, name)}))
    return results
