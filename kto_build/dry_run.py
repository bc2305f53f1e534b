"""Evaluate a node's upstream SELECT chain in memory, writing nothing.

``kto-build plan`` counts the LLM calls a generator would make. Counting from
the stored prompts table is wrong when the prompts change upstream (a line
added to the prompt file, a filter edited in ``stg_prompts.sql``): the run
rebuilds those first. Here every ancestor that is a SQL model or a file source
becomes a TEMP VIEW over its *current* definition, in an in-memory DuckDB with
the project's file attached read-only (for everything else: annotations,
generations, the cache). A query on the node then sees what a run would build.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import duckdb

from .errors import KtoBuildError
from .sql import literal as sql_literal
from .sql import quote

if TYPE_CHECKING:
    from .project import Project

STORED = "kto_stored"


def _select_of(node, con) -> str | None:
    """The SELECT a node's table is built from, or None to read the stored table."""
    from .nodes.model import ModelNode
    from .nodes.source import SourceNode

    if isinstance(node, ModelNode):
        return node.sql.rstrip().rstrip(";")
    if isinstance(node, SourceNode) and node.file is not None:  # a `datasets` source: as stored (no import)
        return node.select_sql(con)
    return None


@contextlib.contextmanager
def dry_upstream(project: Project, name: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory connection where ``name`` and its SQL/file ancestors are views over
    their current definitions. Raises KtoBuildError when a needed table is not stored."""
    db = project.database()
    con = duckdb.connect(":memory:")
    try:
        if db.exists():
            path = sql_literal(str(db.path))
            try:
                con.execute(f"ATTACH {path} AS {STORED} (READ_ONLY)")
            except duckdb.Error as exc:
                raise KtoBuildError(f"cannot read {db.display}: {str(exc).splitlines()[0]}") from None
            con.execute(f"USE {STORED}")
        for var, value in project.vars.items():
            con.execute(f"SET VARIABLE {quote(var)} = {sql_literal(value)}")
        chain = project.graph.ancestors(name) | {name}
        for n in (x for x in project.graph.order if x in chain):
            sql = _select_of(project.nodes[n], con)
            if sql is None:
                continue
            try:
                con.execute(f"CREATE TEMP VIEW {quote(n)} AS {sql}")
            except duckdb.Error as exc:
                node = project.nodes[n]
                raise KtoBuildError(str(exc).strip().splitlines()[0], node.path, node.line) from None
        yield con
    finally:
        con.close()
