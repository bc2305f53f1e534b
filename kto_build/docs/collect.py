"""What the site shows, read from stable places only: the DuckDB file through one
read-only connection, ``target/manifest.json`` and ``target/run_results.json``,
the ``_kto_build`` state tables, and the Project API (nodes, graph, SQL, vars).

Node kinds are read by their ``kind`` and the table contracts of
docs/architecture.md, never by importing node classes, so the package can move.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import KtoBuildError
from ..sql import literal as sql_literal
from ..sql import quote
from ..state import SCHEMA, read_states, relations

WAIT_SECONDS = 3.0
#: builds per node shown on its page (from the append-only _kto_build.node_history)
HISTORY = 20


@contextmanager
def read_only(project):
    """One read-only connection with the project vars set, or None when nothing is built yet.

    A run holds the file only for short writes (between batches and nodes), so
    this waits up to WAIT_SECONDS for a window, then says in one line that the
    run holds the file. It never takes the writer lock and never writes.
    """
    from ..state import DatabaseBusyError, open_reader

    db = project.database()
    if not db.exists():
        yield None
        return
    try:  # the one waiting read-only connect (state.open_reader): says "waiting ..." after 1 s
        con = open_reader(db.path, db.display, timeout=WAIT_SECONDS)
    except DatabaseBusyError:
        raise KtoBuildError(f"{db.display} is held by a running kto-build run (or another writer); "
                            "the site was not built, nothing was changed: retry when the run "
                            "finishes or between its batches") from None
    try:
        for name, value in project.vars.items():
            con.execute(f"SET VARIABLE {name} = {sql_literal(value)}")
        yield con
    finally:
        con.close()


@dataclass
class Snapshot:
    """Everything read at once, so the pages describe one consistent moment."""

    project: Any
    con: Any = None
    states: dict = field(default_factory=dict)
    rels: dict = field(default_factory=dict)
    columns: dict = field(default_factory=dict)  # relation -> [(column, type)]
    runs: list = field(default_factory=list)
    run_results: dict | None = None
    manifest: dict | None = None
    cache: Any = None  # a DocsCache (cache.py) when building a site
    plotter: Any = None  # charts for node pages (paths relative to nodes/), when building a site
    lineage_args: dict = field(default_factory=dict)  # model -> (key, sql, columns, schema), computed once
    history: dict = field(default_factory=dict)  # node -> [{finished_at, status, rows, seconds, fingerprint}]
    _results: dict | None = None

    def q(self, sql: str, params=None) -> list[tuple]:
        return self.con.execute(sql, params or []).fetchall()

    def has(self, relation: str) -> bool:
        return relation.lower() in self.rels

    def cols(self, relation: str) -> dict[str, str]:
        return dict(self.columns.get(relation.lower(), []))

    def last_result(self, name: str) -> dict | None:
        if self._results is None:
            self._results = {n.get("name"): n for n in (self.run_results or {}).get("nodes", [])}
        return self._results.get(name)


def _json_file(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def snapshot(project, con) -> Snapshot:
    snap = Snapshot(project=project, con=con)
    snap.run_results = _json_file(project.target_dir / "run_results.json")
    snap.manifest = _json_file(project.target_dir / "manifest.json")
    if con is None:
        return snap
    snap.states = read_states(con)
    snap.rels = relations(con)
    for table, col, dtype in con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE schema_name = 'main' "
            "ORDER BY table_name, column_index").fetchall():
        snap.columns.setdefault(table.lower(), []).append((col, dtype))
    has_runs = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = 'runs'",
                           [SCHEMA]).fetchone()[0]
    snap.history = node_history(con)
    if has_runs:
        snap.runs = [dict(zip(("run_id", "command", "target", "started_at", "finished_at", "built", "skipped",
                                "failed"), r, strict=True))
                     for r in con.execute(f"SELECT * FROM {SCHEMA}.runs ORDER BY started_at DESC LIMIT 50").fetchall()]
    return snap


def node_history(con, limit: int = HISTORY) -> dict[str, list[dict]]:
    """The last ``limit`` builds of every node, oldest first (one query for all nodes)."""
    has = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = 'node_history'",
                      [SCHEMA]).fetchone()[0]
    out: dict[str, list[dict]] = {}
    if not has:
        return out
    has_message = con.execute("SELECT count(*) FROM duckdb_columns() WHERE schema_name = ? AND table_name = "
                              "'node_history' AND column_name = 'message'", [SCHEMA]).fetchone()[0]
    keys = ("finished_at", "status", "rows", "seconds", "fingerprint", "message")
    message = "message" if has_message else "NULL"  # read-only: a database from before the column keeps it absent
    for r in con.execute(f"""
            SELECT node, finished_at, status, rows, seconds, fingerprint, {message} FROM {SCHEMA}.node_history
            QUALIFY row_number() OVER (PARTITION BY node ORDER BY finished_at DESC) <= ?
            ORDER BY node, finished_at""", [limit]).fetchall():
        out.setdefault(r[0], []).append(dict(zip(keys, r[1:], strict=True)))
    return out


def node_status(snap: Snapshot, name: str) -> dict:
    """Last status and row count: the last run's result, else the stored state."""
    st = snap.states.get(name)
    res = snap.last_result(name)
    status = "never built" if st is None else "built"
    if res is not None and res.get("status") == "failed":
        status = "failed"
    rows = st.rows if st is not None else None
    return {"kind": snap.project.nodes[name].kind, "status": status, "rows": rows,
            "built_at": st.built_at if st else None, "seconds": st.seconds if st else None,
            "last_run": res.get("status") if res else None}


# ------------------------------------------------------------- generations
def generation_stats(snap: Snapshot, node) -> dict:
    """Per model of a generation node: ok / failed / cached, latency and tokens, failure reasons, cache keys."""
    out: dict[str, Any] = {"models": [], "latency": {}, "tokens": {}, "errors": [], "cache_keys": []}
    if snap.con is None or not snap.has(node.name):
        return out
    st = snap.states.get(node.name)
    started = None
    if st is not None and st.built_at is not None and st.seconds is not None:
        from datetime import timedelta

        started = st.built_at - timedelta(seconds=st.seconds)
    t = quote(node.name)
    for model, ok, failed, cached, toks in snap.q(
            f"SELECT model_name, count(*) FILTER (WHERE status = 'ok'), count(*) FILTER (WHERE status <> 'ok'), "
            f"count(*) FILTER (WHERE status = 'ok' AND created_at < ?), sum(output_tokens) FROM {t} "
            "GROUP BY 1 ORDER BY 1", [started]):
        out["models"].append({"model": model, "ok": ok, "failed": failed, "cached": cached if started else None,
                              "output_tokens": toks})
    for model, lat, tok in snap.q(f"SELECT model_name, latency_ms, output_tokens FROM {t} WHERE status = 'ok'"):
        if lat is not None:
            out["latency"].setdefault(model, []).append(float(lat))
        if tok is not None:
            out["tokens"].setdefault(model, []).append(int(tok))
    out["errors"] = [{"model": m, "error": e, "rows": n} for m, e, n in snap.q(
        f"SELECT model_name, coalesce(error, '(no message)'), count(*) FROM {t} WHERE status <> 'ok' "
        "GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 50")]
    has_cache = snap.q("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = 'generations'",
                       [SCHEMA])[0][0]
    if has_cache:
        in_use = {m.fingerprint for m in getattr(node, "models", [])}
        for fp, model, kwargs, rows, ok in snap.q(
                f"SELECT model_fingerprint, any_value(model_name), any_value(CAST(generation_kwargs AS VARCHAR)), "
                f"count(*), count(*) FILTER (WHERE status = 'ok') FROM {SCHEMA}.generations WHERE generator = ? "
                "GROUP BY 1 ORDER BY 2, 1", [node.name]):
            out["cache_keys"].append({"fingerprint": fp, "model": model, "generation_kwargs": kwargs, "rows": rows,
                                      "ok": ok, "in_use": fp in in_use})
    return out


# -------------------------------------------------------------- annotations
def annotation_stats(snap: Snapshot, node) -> dict:
    out: dict[str, Any] = {"answers": {}, "per_annotator": [], "timeline": [], "records": None, "pushed": None,
                           "complete": 0}
    if snap.con is None or not snap.has(node.name):
        return out
    if snap.has(node.records):
        out["records"] = snap.q(f"SELECT count(*) FROM {quote(node.records)}")[0][0]
    latest = quote(node.latest_view if snap.has(node.latest_view) else node.name)
    rows = snap.q(f"SELECT record_id, annotator_id, any_value(annotator), value FROM {latest} "
                  "WHERE status = 'submitted' AND question = ? GROUP BY ALL", [node.question])
    for rid, aid, _who, value in rows:
        out["answers"].setdefault(aid, {})[rid] = value
    out["per_annotator"] = [{"annotator": a, "status": s, "answers": n} for a, s, n in snap.q(
        f"SELECT annotator_id, status, count(*) FROM {latest} WHERE question = ? GROUP BY 1, 2 ORDER BY 1, 2",
        [node.question])]
    log = quote(node.name)
    first = ("SELECT record_id, annotator_id, min(coalesce(response_updated_at, pulled_at)) AS t "
             f"FROM {log} WHERE status = 'submitted' AND question = ? GROUP BY 1, 2")
    series = snap.q(f"""
        WITH f AS ({first}),
        per AS (SELECT record_id, min(t) AS answered,
                       list_sort(list(t))[?] AS complete FROM f GROUP BY 1)
        SELECT 'answered', answered FROM per
        UNION ALL SELECT 'complete', complete FROM per WHERE complete IS NOT NULL""",
                    [node.question, max(1, int(node.min_submitted))])
    push_log = snap.q("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? "
                      "AND table_name = 'annotation_records'", [SCHEMA])[0][0]
    if push_log and getattr(node, "backend", "") == "argilla":
        series += [("pushed", r[0]) for r in snap.q(
            f"SELECT pushed_at FROM {SCHEMA}.annotation_records WHERE node = ?", [node.name])]
        out["pushed"] = sum(1 for s, _ in series if s == "pushed")
    out["complete"] = sum(1 for s, _ in series if s == "complete")
    out["timeline"] = _cumulative(series)
    return out


def _cumulative(events: list[tuple[str, Any]]) -> list[dict]:
    points: list[dict] = []
    for name in ("pushed", "answered", "complete"):
        times = sorted(t for s, t in events if s == name and t is not None)
        for i, t in enumerate(times, 1):
            points.append({"series": name, "time": t.isoformat(), "count": i})
    return points


# ------------------------------------------------------------ leaderboard
def leaderboard(snap: Snapshot, node, positive: str) -> list[dict]:
    """Up rate per generator model from an annotation node's latest submitted answers."""
    if snap.con is None or not snap.has(node.name) or not snap.has(node.records):
        return []
    if "model_name" not in snap.cols(node.records) or "id" not in snap.cols(node.records):
        return []
    latest = quote(node.latest_view if snap.has(node.latest_view) else node.name)
    return [{"model": m, "up": up, "answers": n} for m, up, n in snap.q(
        f"SELECT r.model_name, count(*) FILTER (WHERE a.value = ?), count(*) FROM {latest} a "
        f"JOIN {quote(node.records)} r ON CAST(r.id AS VARCHAR) = a.record_id "
        "WHERE a.status = 'submitted' AND a.question = ? GROUP BY 1 ORDER BY 1", [positive, node.question])]
