"""Deleting paid-for generations takes an explicit command.

``kto-build prune`` removes cached generations whose model settings no
generator uses any more, in any target of the project: rows that no run can
show again. Without ``--yes`` it only says what it would delete. Answers in
annotation logs are never pruned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .nodes.generation.cache import CACHE, CACHE_TABLE
from .state import SCHEMA

if TYPE_CHECKING:
    from .project import Project


def fingerprints_in_use(project: Project) -> set[str]:
    """Model fingerprints of every generator, in every target of the project."""
    from .project import Project

    targets = list(project.config.get("targets") or {}) or [project.target]
    used: set[str] = set()
    for target in targets:
        p = project if target == project.target else Project.load(project.root, target=target)
        for node in p.nodes.values():
            if node.kind == "generation":
                used.update(m.fingerprint for m in [*node.models, *node.disabled_models])
    return used


def prune_generations(project: Project, apply: bool = False) -> list[dict]:
    """Cached generations no generator can use: one dict per (generator, model, fingerprint).

    With ``apply`` they are deleted, in one transaction under the writer lock.
    """
    db = project.database()
    if not db.exists():
        return []
    used = sorted(fingerprints_in_use(project))
    where = "model_fingerprint NOT IN (SELECT unnest(?::VARCHAR[]))"
    with db.writer_lock(), db.connect(read_only=not apply) as con:
        has = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                          [SCHEMA, CACHE_TABLE]).fetchone()[0]
        if not has:
            return []
        rows = con.execute(
            f"SELECT generator, model_name, model_fingerprint, count(*), count(*) FILTER (WHERE status = 'ok') "
            f"FROM {CACHE} WHERE {where} GROUP BY ALL ORDER BY ALL", [used]).fetchall()
        if apply and rows:
            con.execute("BEGIN TRANSACTION")
            con.execute(f"DELETE FROM {CACHE} WHERE {where}", [used])
            con.execute("COMMIT")
    return [{"generator": g, "model_name": m, "model_fingerprint": fp, "rows": n, "ok_rows": ok}
            for g, m, fp, n, ok in rows]
