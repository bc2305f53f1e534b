"""Column-level lineage for a model page: per column, the parent columns it comes from (one level: the
parents' pages go on from there).

Two ways, same answer: a direct walk of sqlglot's scopes for the common shape (SELECTs over tables,
CTEs and derived tables, explicit projections), which needs no ``qualify`` pass and is ~5x faster;
and sqlglot's own ``qualify`` + ``lineage`` for everything else (stars, set operations, subqueries in
a projection, names the walk cannot resolve unambiguously). tests/docs/test_lineage.py checks both
agree on every model the walk handles."""

from __future__ import annotations


def warm_up() -> None:
    """Import and set up what ``model_lineage`` uses on its common path (sqlglot, its scopes, the dialect's
    tokenizer and parser)."""
    from sqlglot.optimizer.scope import build_scope  # noqa: F401

    from .sqltok import parse

    parse("select 1 as x")


def model_lineage(sql: str, columns: list[str], schema: dict[str, dict[str, str]]) -> dict[str, list[dict]]:
    """{column: [{table, column}]}; a column sqlglot cannot trace gets []."""
    from sqlglot.errors import SqlglotError

    from .sqltok import parse

    try:
        tree = parse(sql.strip())  # the text the page highlights: its tokens are shared (sqltok.py)
    except (SqlglotError, ValueError, KeyError):
        return {c: [] for c in columns}
    fast = direct_lineage(tree, columns, schema)
    return fast if fast is not None else sqlglot_lineage(tree, columns, schema)


def sqlglot_lineage(tree, columns: list[str], schema: dict[str, dict[str, str]]) -> dict[str, list[dict]]:
    """sqlglot's qualify + lineage: one qualify and one scope per model, shared by its columns."""
    from sqlglot import exp
    from sqlglot.errors import SqlglotError
    from sqlglot.lineage import lineage
    from sqlglot.optimizer.qualify import qualify
    from sqlglot.optimizer.scope import build_scope

    from ..sql import DIALECT

    try:
        tree = qualify(tree, schema=schema, dialect=DIALECT, validate_qualify_columns=False, identify=False)
        scope = build_scope(tree)
    except (SqlglotError, ValueError, KeyError):
        return {c: [] for c in columns}
    out: dict[str, list[dict]] = {}
    for col in columns:
        found: list[dict] = []
        try:
            todo = [lineage(col, tree, schema=schema, dialect=DIALECT, scope=scope, copy=False, trim_selects=False)]
        except (SqlglotError, ValueError, KeyError):
            out[col] = []
            continue
        while todo:
            n = todo.pop()
            if not n.downstream and isinstance(n.expression, exp.Table):
                item = {"table": n.expression.name, "column": n.name.split(".")[-1].strip('"')}
                if item not in found:
                    found.append(item)
            todo.extend(n.downstream)
        out[col] = sorted(found, key=lambda d: (d["table"], d["column"]))
    return out


class _UnsureError(Exception):
    """The direct walk met a shape it does not handle: sqlglot's full path decides."""


def direct_lineage(tree, columns: list[str], schema: dict[str, dict[str, str]]) -> dict[str, list[dict]] | None:
    """The walk over scopes; None when the query has a shape it leaves to sqlglot's full path."""
    from sqlglot.optimizer.scope import build_scope

    try:
        root = build_scope(tree)
        if root is None:
            return None
        lower = {t.lower(): {c.lower(): c for c in cols} for t, cols in schema.items()}
        out = {}
        for col in columns:
            found: set[tuple[str, str]] = set()
            _trace(root, col, lower, found, 0)
            out[col] = [{"table": t, "column": c} for t, c in sorted(found)]
        return out
    except _UnsureError:
        return None


def _projection(scope, name: str):
    from sqlglot import exp

    sel = scope.expression
    if not isinstance(sel, exp.Select) or any(isinstance(p, exp.Star) or (isinstance(p, exp.Column) and
                                                                          isinstance(p.this, exp.Star))
                                              for p in sel.selects):
        raise _UnsureError
    hits = [p for p in sel.selects if p.alias_or_name.lower() == name.lower()]
    if len(hits) != 1:
        raise _UnsureError
    return hits[0]


def _trace(scope, name: str, schema: dict, found: set, depth: int) -> None:
    from sqlglot import exp

    if depth > 32:
        raise _UnsureError
    proj = _projection(scope, name)
    if proj.find(exp.Select, exp.Subquery, exp.Lambda):
        raise _UnsureError
    for col in proj.find_all(exp.Column):
        if isinstance(col.this, exp.Star):
            raise _UnsureError
        src = _source(scope, col, schema)
        if isinstance(src, exp.Table):
            cols = schema.get(src.name.lower())
            if cols is None or col.name.lower() not in cols:
                raise _UnsureError
            found.add((src.name, cols[col.name.lower()]))
        else:
            _trace(src, col.name, schema, found, depth + 1)


def _source(scope, col, schema: dict):
    from sqlglot import exp

    sources = scope.sources
    if col.table:
        src = sources.get(col.table)
        if src is None:
            raise _UnsureError
        return src
    has = []  # DuckDB binds a name to a FROM column first; a select-alias reference finds none -> _UnsureError
    for src in sources.values():
        if isinstance(src, exp.Table):
            cols = schema.get(src.name.lower())
            if cols is None:
                raise _UnsureError
            if col.name.lower() in cols:
                has.append(src)
        else:
            sel = src.expression
            if not hasattr(sel, "selects") or any(isinstance(p, exp.Star) for p in sel.selects):
                raise _UnsureError
            if col.name.lower() in {p.alias_or_name.lower() for p in sel.selects}:
                has.append(src)
    if len(has) != 1:
        raise _UnsureError
    return has[0]
