"""The push log: which records went to which Argilla dataset, by stable id and record hash.

``_kto_build.annotation_records`` holds one row per (node, record_id) with the
hash of the fields and metadata pushed and the server dataset's id. A record
is pushed again when its hash changes or when the dataset is another one
(deleted, renamed, new).
"""

from __future__ import annotations

from ...sql import quote
from ...state import SCHEMA, utcnow

#: the fields every records model has (besides ``id``) and every push sends
FIELDS = ("prompt", "completion")
PUSH_LOG = f"{SCHEMA}.annotation_records"
PUSH_LOG_DDL = f"""CREATE TABLE IF NOT EXISTS {PUSH_LOG} (
    node VARCHAR NOT NULL,
    record_id VARCHAR NOT NULL,
    record_hash VARCHAR NOT NULL,
    pushed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (node, record_id)
)"""


def ensure_push_log(con) -> None:
    con.execute(PUSH_LOG_DDL)
    # the push log is per server dataset: a deleted, renamed or new dataset gets every record again
    con.execute(f"ALTER TABLE {PUSH_LOG} ADD COLUMN IF NOT EXISTS dataset_id VARCHAR")


def record_hash_sql(meta: list[str]) -> str:
    parts = ", ".join(f"{quote(c)} := CAST({quote(c)} AS VARCHAR)" for c in (*FIELDS, *meta))
    return f"md5(to_json(struct_pack({parts})))"


def unpushed(con, node: str, records: str, meta: list[str], dataset_id: str | None = None) -> list[dict]:
    """Rows of ``records`` whose (id, hash) the push log has not seen for ``dataset_id``."""
    cols = ["id", *FIELDS, *meta]
    select = ", ".join(f"CAST({quote(c)} AS VARCHAR) AS {quote(c)}" for c in cols)
    rows = con.execute(
        f"SELECT {select}, {record_hash_sql(meta)} AS _hash FROM {quote(records)} r "
        f"WHERE NOT EXISTS (SELECT 1 FROM {PUSH_LOG} p WHERE p.node = ? "
        f"AND p.record_id = CAST(r.id AS VARCHAR) AND p.record_hash = {record_hash_sql(meta)} "
        "AND p.dataset_id IS NOT DISTINCT FROM ?) ORDER BY 1", [node, dataset_id]).fetchall()
    names = [*cols, "_hash"]
    return [dict(zip(names, r, strict=True)) for r in rows]


def adopt_unnamed(con, node: str, dataset_id: str) -> None:
    """Rows logged before the log named datasets belong to the one the node's state names."""
    con.execute(f"UPDATE {PUSH_LOG} SET dataset_id = ? WHERE node = ? AND dataset_id IS NULL", [dataset_id, node])


def logged_elsewhere(con, node: str, dataset_id: str) -> int:
    return con.execute(f"SELECT count(*) FROM {PUSH_LOG} WHERE node = ? AND dataset_id IS DISTINCT FROM ?",
                       [node, dataset_id]).fetchone()[0]


def log_pushed(con, node: str, batch: list[dict], dataset_id: str) -> None:
    """Record one pushed batch (rows of ``unpushed``) in the caller's transaction."""
    con.execute(
        f"INSERT OR REPLACE INTO {PUSH_LOG} (node, record_id, record_hash, pushed_at, dataset_id) "
        "SELECT * FROM (SELECT ? AS node, unnest(?::VARCHAR[]) AS record_id, "
        "unnest(?::VARCHAR[]) AS record_hash, ?::TIMESTAMP AS pushed_at, ? AS dataset_id)",
        [node, [r["id"] for r in batch], [r["_hash"] for r in batch], utcnow(), dataset_id])


def pushed_count(con, node: str, dataset_id: str | None) -> int:
    """Records pushed to ``dataset_id``; with no dataset id known, every logged record of the node.
    Unnamed rows (logged before the log named datasets) count for the given dataset."""
    cols = {r[0] for r in con.execute(f"DESCRIBE {PUSH_LOG}").fetchall()}
    if "dataset_id" not in cols or not dataset_id:
        return con.execute(f"SELECT count(*) FROM {PUSH_LOG} WHERE node = ?", [node]).fetchone()[0]
    return con.execute(f"SELECT count(*) FROM {PUSH_LOG} WHERE node = ? AND coalesce(dataset_id, ?) = ?",
                       [node, dataset_id, dataset_id]).fetchone()[0]


def pushed_to(con, node: str, dataset_id: str) -> int:
    """Records the push log holds for exactly ``dataset_id``."""
    return con.execute(f"SELECT count(*) FROM {PUSH_LOG} WHERE node = ? AND dataset_id = ?",
                       [node, dataset_id]).fetchone()[0]
