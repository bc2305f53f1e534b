"""Small helpers shared by the test directories."""

from __future__ import annotations

from pathlib import Path

import duckdb


def query(root: Path, sql: str, database: str = "target/kto_build.duckdb") -> list[tuple]:
    """Rows of ``sql`` on a project's database, through a read-only connection closed at once."""
    con = duckdb.connect(str(Path(root) / database), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()
