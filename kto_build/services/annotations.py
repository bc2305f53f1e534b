"""What the annotation commands do, as calls on a project: pick a node, import an answers file,
export the records still waiting, report status. The node (kto_build/nodes/annotation/) keeps the log;
these read and write it for ``kto-build annotate`` and ``kto-build annotations``."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..errors import KtoBuildError
from ..nodes.annotation.node import AnnotationNode
from ..nodes.annotation.push import FIELDS, pushed_count
from ..sql import quote
from ..state import read_states, relations, utcnow


def annotation_nodes(project, names: list[str] | None = None) -> list[AnnotationNode]:
    nodes = [n for n in project.nodes.values() if isinstance(n, AnnotationNode)]
    if names:
        wanted = [project.node(n) for n in names]
        for n in wanted:
            if not isinstance(n, AnnotationNode):
                raise KtoBuildError(f"'{n.name}' is a {n.kind}, not an annotation node")
        return wanted
    return nodes


def pick_local_node(project, name: str | None) -> AnnotationNode:
    nodes = annotation_nodes(project, [name] if name else None)
    if not nodes:
        raise KtoBuildError("this project declares no annotation nodes", "sources.yml",
                            hint="add one under 'annotations:'")
    if name is None and len(nodes) > 1:
        raise KtoBuildError("more than one annotation node: name one (" + ", ".join(n.name for n in nodes) + ")")
    node = nodes[0]
    if node.backend != "local":
        raise KtoBuildError(f"'{node.name}' uses the {node.backend} backend (target {project.target}): answer in "
                            "Argilla, then 'kto-build run' pulls the answers", node.path, node.line_of("backend"))
    return node


def status(project, names: list[str] | None = None) -> list[dict]:
    """Per annotation node: records, pushed, completed (>= min_submitted submitted), answers per annotator,
    last pull. Reads the DuckDB file only; talks to no server."""
    db = project.database()
    states = db.read_states() if db.exists() else {}
    out = []
    for node in annotation_nodes(project, names):
        st = states.get(node.name)
        d: dict[str, Any] = {"node": node.name, "backend": node.backend, "records": None, "pushed": None,
                             "completed": None, "min_submitted": node.min_submitted, "answers": 0,
                             "log_rows": 0, "annotators": {}, "last_pull_at": None, "last_answer_at": None,
                             "built": st is not None}
        if st is not None and db.exists():
            with db.connect(read_only=True) as con:
                d.update(_status_counts(node, con))
            d["last_pull_at"] = st.extra.get("last_pull_at")
        out.append(d)
    return out


def _pushed(con, node: AnnotationNode) -> int:
    """Records pushed to the dataset the last run used (the push log is per server dataset)."""
    st = read_states(con).get(node.name)
    return pushed_count(con, node.name, st.extra.get("dataset_id") if st is not None else None)


def _status_counts(node: AnnotationNode, con) -> dict:
    rels = relations(con)
    d: dict[str, Any] = {}
    if node.records.lower() in rels:
        d["records"] = con.execute(f"SELECT count(*) FROM {quote(node.records)}").fetchone()[0]
    d["pushed"] = _pushed(con, node) if node.backend == "argilla" else None
    if node.name not in rels:
        return d
    latest = quote(node.latest_view)
    d["log_rows"], last = con.execute(f"SELECT count(*), max(pulled_at) FROM {quote(node.name)}").fetchone()
    d["last_answer_at"] = last.isoformat() if last else None
    d["completed"] = con.execute(
        f"SELECT count(*) FROM (SELECT record_id FROM {latest} WHERE status = 'submitted' AND question = ? "
        "GROUP BY record_id HAVING count(*) >= ?)", [node.question, node.min_submitted]).fetchone()[0]
    per = con.execute(
        f"SELECT any_value(annotator ORDER BY pulled_at DESC), status, count(*) FROM {latest} WHERE question = ? "
        "GROUP BY annotator_id, status ORDER BY 1, 2", [node.question]).fetchall()
    annotators: dict[str, dict] = {}
    for who, st, n in per:
        annotators.setdefault(who, {})[st] = n
    d["annotators"] = annotators
    d["answers"] = sum(v.get("submitted", 0) for v in annotators.values())
    return d


def read_answers_file(node: AnnotationNode, path: Path) -> list[tuple[int, dict]]:
    """Parse an answers jsonl (record_id, annotator, value[, status]); errors name file:line."""
    shown = str(path)
    out = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KtoBuildError(f"cannot read answers file: {exc.strerror}", shown) from None
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise KtoBuildError(f"not JSON: {exc.msg}", shown, i, exc.colno) from None
        if not isinstance(obj, dict):
            raise KtoBuildError("each line must be a JSON object", shown, i)
        for key in ("record_id", "annotator"):
            if obj.get(key) in (None, ""):
                raise KtoBuildError(f"missing '{key}'", shown, i)
        obj.setdefault("status", "submitted")
        obj["record_id"] = str(obj["record_id"])
        out.append((i, obj))
    return out


def import_answers(project, node: AnnotationNode, path: Path) -> dict:
    """Append the answers in a jsonl file to the local log in one transaction (all or nothing)."""
    entries = read_answers_file(node, path)
    db = project.database()
    if not db.exists():
        raise KtoBuildError(f"{db.display} does not exist yet (run 'kto-build run' first)")
    with db.connect() as con:
        con.execute("BEGIN TRANSACTION")
        try:
            node.ensure_tables(con)
            node.record_columns(con)
            known = node.record_ids(con)
            latest = {(k[0], k[1]): v for k, v in node.latest_rows(con).items() if k[2] == node.question}
            rows = []
            base = utcnow()
            for n, (i, obj) in enumerate(entries):
                value = obj.get("value")
                value = None if value is None else str(value)
                annotator = str(obj["annotator"]).strip()
                node.check_answer(obj["record_id"], annotator, value, obj["status"], known, (str(path), i))
                key = (obj["record_id"], annotator.lower())
                prev = latest.get(key)
                if prev is not None and (prev[0], prev[1]) == (value, obj["status"]):
                    continue
                now = base + timedelta(microseconds=n)  # distinct times keep the file's order in the log
                created = prev[3] if prev is not None else now
                rows.append({"record_id": obj["record_id"], "question": node.question, "annotator_id": key[1],
                             "annotator": annotator, "value": value, "status": obj["status"],
                             "response_created_at": created, "response_updated_at": now, "pulled_at": now,
                             "backend": "local"})
                latest[key] = (value, obj["status"], now, created)
            node.append(con, rows)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return {"lines": len(entries), "appended": len(rows), "unchanged": len(entries) - len(rows)}


def export_pending(project, node: AnnotationNode, path: Path) -> int:
    """Write the records still needing answers as jsonl (record_id, prompt, completion, metadata)."""
    db = project.database()
    if not db.exists():
        raise KtoBuildError(f"{db.display} does not exist yet (run 'kto-build run' first)")
    with db.connect(read_only=True) as con:
        cols = node.record_columns(con)
        if node.name in relations(con):
            ids = node.pending(con)
        else:
            ids = sorted(node.record_ids(con))
        meta = node.metadata_columns(cols)
        select = ", ".join(quote(c) for c in ("id", *FIELDS, *meta))
        rows = con.execute(f"SELECT {select} FROM {quote(node.records)} WHERE CAST(id AS VARCHAR) IN "
                           "(SELECT unnest(?::VARCHAR[])) ORDER BY CAST(id AS VARCHAR)", [ids]).fetchall()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            obj = {"record_id": str(r[0]), "prompt": r[1], "completion": r[2],
                   **{m: r[3 + i] for i, m in enumerate(meta)}, "annotator": None, "value": None}
            fh.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    return len(rows)
