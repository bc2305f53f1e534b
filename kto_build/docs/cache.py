"""A build cache in the site folder (``.cache.json``): column lineage, highlighted SQL and the DAG layout,
keyed by a hash of what they are computed from. Like the project's parse cache, a rebuild recomputes only
what changed; entries no page used in this build are dropped when it is saved."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

VERSION = 1


def key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


class DocsCache:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.old: dict = {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("version") == VERSION:
                self.old = data.get("entries", {})
        except (OSError, ValueError):
            pass
        self.new: dict = {}

    def missing(self, section: str, k: str) -> bool:
        return f"{section}:{k}" not in self.old

    def get(self, section: str, k: str, compute):
        full = f"{section}:{k}"
        if full in self.new:
            return self.new[full]
        value = self.old[full] if full in self.old else compute()
        self.new[full] = value
        return value

    def save(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": VERSION, "entries": self.new}), encoding="utf-8")
        tmp.replace(self.path)
