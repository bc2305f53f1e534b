"""SQL models: one DuckDB SELECT per ``models/*.sql`` file."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from ..errors import KtoBuildError
from ..sql import inline_vars, quote
from .base import Node, NodeResult

if TYPE_CHECKING:
    from .base import NodeContext

_LINE = re.compile(r"LINE (\d+):")


@dataclass(eq=False)  # identity: two nodes are never equal by their fields
class ModelNode(Node):
    """A models/*.sql SELECT, materialized as a table or a view, with its data tests."""

    sql: str = ""
    normalized_sql: str = ""
    used_vars: list[str] = field(default_factory=list)
    materialization: str = "table"
    tests: list = field(default_factory=list)
    columns: list = field(default_factory=list)
    #: the tables its SQL reads (``sql.Reference``: name, line, col), for unknown-table errors
    references: list = field(default_factory=list)

    kind: ClassVar[str] = "model"
    short: ClassVar[bool] = True

    @property
    def materialized(self) -> str:
        return self.materialization

    def definition(self):
        return {"sql": self.normalized_sql, "materialized": self.materialization}

    def vars_used(self) -> list[str]:
        return self.used_vars

    def stale_reason(self, ctx: NodeContext) -> str | None:
        if ctx.state is not None and ctx.state.extra.get("tests_failed"):
            return "its data tests failed last run"
        return None

    def create_statement(self, variables: dict | None = None) -> str:
        body = self.sql.rstrip().rstrip(";")
        if self.materialization == "view":
            if self.used_vars:
                body = inline_vars(body, variables or {})
            return f"CREATE OR REPLACE VIEW {quote(self.name)} AS\n{body}"
        return f"CREATE OR REPLACE TABLE {quote(self.name)} AS\n{body}"

    def run(self, ctx: NodeContext) -> NodeResult:
        with ctx.transaction() as tx:
            existing = ctx.relation_kind(tx.con, self.name)
            if existing and existing != self.materialization:
                tx.con.execute(f"DROP {existing.upper()} {quote(self.name)}")
            try:
                created = tx.con.execute(self.create_statement(ctx.project.vars)).fetchall()
            except Exception as exc:  # duckdb.Error: map to file:line
                raise self.sql_error(exc) from None
            # CREATE TABLE ... AS answers with the rows it inserted (one statement less per model)
            rows = int(created[0][0]) if self.materialization == "table" else None
            from ..datatests import run_model_tests  # lazy: a no-op run does not import it

            tests = run_model_tests(tx.con, self, ctx.project.nodes)  # data tests right after the build
            tx.save(rows=rows, extra={"tests_failed": tests.error[:500]} if tests.error else None)
        return NodeResult(rows=rows, message=tests.error or "", warnings=tests.warnings,
                          status="failed" if tests.error else "built", tests=tests.results)

    def sql_error(self, exc: Exception) -> KtoBuildError:
        text = str(exc)
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        line = None
        m = _LINE.search(text)
        if m:
            line = max(1, int(m.group(1)) - 1)  # the CREATE ... AS line we prepend
        else:
            quoted = re.findall(r'"([^"]+)"', first)
            for word in quoted:
                for i, sql_line in enumerate(self.sql.splitlines(), 1):
                    if word in sql_line:
                        line = i
                        break
                if line:
                    break
        return KtoBuildError(first, self.path, line)
