"""Column-level lineage for a model page: per column, the parent columns it comes from (one level:
the parents' pages go on from there). One qualify and one scope per model, shared by its columns."""

from __future__ import annotations


def model_lineage(sql: str, columns: list[str], schema: dict[str, dict[str, str]]) -> dict[str, list[dict]]:
    """{column: [{table, column}]}; a column sqlglot cannot trace gets []."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError
    from sqlglot.lineage import lineage
    from sqlglot.optimizer.qualify import qualify
    from sqlglot.optimizer.scope import build_scope

    from ..sql import DIALECT

    try:
        tree = qualify(sqlglot.parse_one(sql, read=DIALECT), schema=schema, dialect=DIALECT,
                       validate_qualify_columns=False, identify=False)
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
