"""Everything kto-build knows about SQL, through sqlglot's AST.

References (tables minus CTE names and table functions), fingerprints
(normalized AST, so whitespace and comments do not count), the vars a model
reads through ``getvariable('name')``, and column-level lineage.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import KtoBuildError

if TYPE_CHECKING:
    from sqlglot import exp

# sqlglot is imported inside the functions that parse: a project whose model
# files are unchanged since the last load is read from the parse cache
# (project.py) and never needs it.

DIALECT = "duckdb"
#: schemas that hold the project's own nodes; other qualified names are external
LOCAL_SCHEMAS = ("", "main")


@dataclass(frozen=True)
class Reference:
    """A relation a model's SQL refers to."""

    name: str
    line: int
    col: int


def parse(sql: str, path: str) -> exp.Expression:
    """Parse one model file: exactly one SELECT-like statement."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError, TokenError

    try:
        statements = [s for s in sqlglot.parse(sql, read=DIALECT) if s is not None]
    except ParseError as exc:
        err = exc.errors[0] if exc.errors else {}
        desc = err.get("description") or str(exc).splitlines()[0]
        raise KtoBuildError(f"SQL syntax error: {desc}", path, err.get("line"), err.get("col")) from None
    except TokenError as exc:
        raise KtoBuildError(f"SQL syntax error: {exc}", path) from None
    if not statements:
        raise KtoBuildError("the model file holds no SQL statement (write one SELECT)", path, 1)
    if len(statements) > 1:
        raise KtoBuildError("a model file must hold exactly one SELECT statement, found "
                            f"{len(statements)} (split them into files)", path, 1)
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        raise KtoBuildError(f"a model must be a SELECT query, found {tree.key.upper()} "
                            "(kto-build creates the table itself)", path, 1)
    return tree


def references(tree: exp.Expression) -> list[Reference]:
    """Tables a query reads: table names minus CTE names and table functions."""
    from sqlglot import exp

    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    seen: dict[str, Reference] = {}
    for table in tree.find_all(exp.Table):
        ident = table.this
        if not isinstance(ident, exp.Identifier):
            continue  # read_csv(...), range(...), unnest(...)
        if table.args.get("catalog") is not None and table.catalog:
            continue
        if table.db.lower() not in LOCAL_SCHEMAS:
            continue
        name = ident.name.lower()
        if not table.db and name in ctes:
            continue
        if name not in seen:
            meta = ident.meta or {}
            seen[name] = Reference(name, meta.get("line", 1), max(1, meta.get("col", 1) - len(ident.name) + 1))
    return list(seen.values())


def vars_used(tree: exp.Expression) -> list[str]:
    """Names passed as literals to ``getvariable``."""
    from sqlglot import exp

    names = set()
    for func in tree.find_all(exp.Anonymous):
        if func.name.lower() == "getvariable" and func.expressions:
            arg = func.expressions[0]
            if isinstance(arg, exp.Literal) and arg.is_string:
                names.add(arg.this)
    return sorted(names)


def inline_vars(sql: str, values: dict) -> str:
    """The query with each ``getvariable('x')`` replaced by its value.

    Views are evaluated when read, in whatever connection reads them (a user's
    duckdb shell has no project vars), so a view's SQL gets the values baked in.
    """
    import sqlglot
    from sqlglot import exp

    def swap(node):
        if isinstance(node, exp.Anonymous) and node.name.lower() == "getvariable" and node.expressions:
            arg = node.expressions[0]
            if isinstance(arg, exp.Literal) and arg.is_string and arg.this in values:
                return sqlglot.parse_one(literal(values[arg.this]), read=DIALECT)
        return node

    tree = sqlglot.parse_one(sql, read=DIALECT).transform(swap)
    return tree.sql(dialect=DIALECT, pretty=True)


def runnable(statement: str, used_vars: list[str], values: dict) -> str:
    """``kto-build compile`` output that runs as is in a plain duckdb shell, like
    ``dbt compile``: the ``SET VARIABLE`` lines for the vars the SQL reads, then the statement."""
    sets = [f"SET VARIABLE {quote(v)} = {literal(values[v])};" for v in sorted(set(used_vars)) if v in values]
    return "\n".join([*sets, statement.rstrip().rstrip(";") + ";"])


def normalized(tree: exp.Expression) -> str:
    """Canonical SQL text: no comments, one spacing, same casing rules."""
    # copy=False: sqlglot otherwise deep-copies the tree first (~4 ms per model); callers read the tree before
    return tree.sql(dialect=DIALECT, comments=False, normalize=False, pretty=False, copy=False)


def fingerprint(*parts: object) -> str:
    """A short stable hash of the given parts."""
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def quote(name: str) -> str:
    """A quoted DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'



def literal(value: Any) -> str:
    """A DuckDB literal: project vars (SET VARIABLE), accepted values in data tests, paths."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"'{k}': {literal(v)}" for k, v in value.items()) + "}"
    return "'" + str(value).replace("'", "''") + "'"


def column_lineage(column: str, sql: str, sources: dict[str, str], schema: dict | None = None) -> list[dict]:
    """Upstream columns of ``column`` in ``sql``: [{table, column, depth}].

    ``sources`` maps model names to their SQL so lineage walks through models;
    ``schema`` maps physical tables to their column types.
    """
    from sqlglot import exp
    from sqlglot.lineage import lineage

    try:
        node = lineage(column, sql, dialect=DIALECT, sources=sources, schema=schema)
    except Exception as exc:  # sqlglot raises SqlglotError / ValueError for unknown columns
        raise KtoBuildError(f"cannot trace column '{column}': {exc}") from None
    found: list[dict] = []
    seen = set()

    def walk(n, depth):
        if not n.downstream and isinstance(n.expression, exp.Table):
            key = (n.expression.name, n.name.split(".")[-1])
            if key not in seen:
                seen.add(key)
                found.append({"table": n.expression.name, "column": n.name.split(".")[-1], "depth": depth})
        for child in n.downstream:
            walk(child, depth + 1)

    walk(node, 0)
    return found
