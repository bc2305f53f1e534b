"""What sqlglot found in each model file, kept in ``target/parse_cache.json``.

Parsing and re-generating 500 model files costs ~0.35 s; reading this cache
costs ~0.02 s and does not import sqlglot. An entry is used only when the
file's text hash, kto-build's version and sqlglot's version all match, so a
cached load gives exactly what parsing would (the same references, vars and
normalized SQL, hence the same fingerprints).
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path

FORMAT = 1


def _versions() -> str:
    from . import __version__

    return f"{FORMAT}/{__version__}/{_sqlglot_version()}"


def _sqlglot_version() -> str:
    """sqlglot's version from its dist-info folder's name beside the package (metadata.version parses the
    METADATA file with the email package: ~10 ms of a no-op run); metadata.version when that is ambiguous."""
    import importlib.util

    spec = importlib.util.find_spec("sqlglot")
    if spec is not None and spec.origin:
        found = [n for n in os.listdir(Path(spec.origin).parent.parent)
                 if n.startswith("sqlglot-") and n.endswith(".dist-info")]
        if len(found) == 1:
            return found[0][len("sqlglot-"):-len(".dist-info")]
    try:
        return metadata.version("sqlglot")
    except metadata.PackageNotFoundError:  # pragma: no cover - sqlglot is a dependency
        return "?"


class ParseCache:
    def __init__(self, path: Path):
        self.path = path
        self.version = _versions()
        self.files: dict[str, dict] = {}
        self.dirty = False
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") == self.version:
                self.files = data.get("files", {})
        except (OSError, ValueError):
            pass

    @staticmethod
    def digest(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]

    def lookup(self, rel: str, text: str) -> dict | None:
        entry = self.files.get(rel)
        if entry and entry.get("sha") == self.digest(text):
            return entry
        return None

    def store(self, rel: str, text: str, entry: dict) -> None:
        self.files[rel] = {"sha": self.digest(text), **entry}
        self.dirty = True

    def save(self, keep: set[str]) -> None:
        """Write the cache (only the files that still exist) if anything changed."""
        gone = set(self.files) - keep
        if not (self.dirty or gone):
            return
        for rel in gone:
            del self.files[rel]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps({"version": self.version, "files": self.files}), encoding="utf-8")
            tmp.replace(self.path)
        except OSError:
            pass  # a read-only checkout still works, just without the cache
