"""Parsed YAML files, kept in ``target/yaml_cache.json``, so a no-op run does not import yaml.

``import yaml`` alone costs ~40 ms (its reader compiles a large Unicode regex); the project's YAML files
parse in a few more. An entry holds a file's data with every line the error messages use (each mapping's
line and key lines, each list's line and item lines) and is used only when the file's text hash, its shown
name, kto-build's version and this format all match, so a cached load returns the same ``YMap``/``YList``
tree parsing would. Only files that parsed cleanly are stored: a YAML error always comes from the parser.
Values JSON cannot hold exactly (dates, binary) make a file not cached.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .yamlio import YList, YMap

FORMAT = 1
_SCALARS = (str, int, float, bool, type(None))


class _UncacheableError(Exception):
    pass


def _encode(v: Any) -> Any:
    if isinstance(v, YMap):
        return {"m": [[k, _encode(x)] for k, x in v.items()], "l": v.line,
                "k": [v.key_lines.get(k) for k in v]}
    if isinstance(v, YList):
        return {"s": [_encode(x) for x in v], "l": v.line, "i": list(v.item_lines)}
    if isinstance(v, _SCALARS):
        return v
    raise _UncacheableError(type(v).__name__)


def _decode(v: Any, path: str) -> Any:
    if not isinstance(v, dict):
        return v
    if "m" in v:
        m = YMap()
        m.path, m.line, m.key_lines = path, v["l"], {}
        for (k, x), line in zip(v["m"], v["k"], strict=True):
            m[k] = _decode(x, path)
            if line is not None:
                m.key_lines[k] = line
        return m
    seq = YList(_decode(x, path) for x in v["s"])
    seq.path, seq.line, seq.item_lines = path, v["l"], list(v["i"])
    return seq


class YamlCache:
    def __init__(self, path: Path):
        from . import __version__

        self.path = path
        self.version = f"{FORMAT}/{__version__}"
        self.files: dict[str, dict] = {}
        #: check name -> digest of the inputs it last passed with (see ``passed``)
        self.checks: dict[str, str] = {}
        self.used: set[str] = set()
        self.dirty = False
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") == self.version:
                self.files, self.checks = data.get("files", {}), data.get("checks", {})
        except (OSError, ValueError, AttributeError):
            pass

    @staticmethod
    def digest(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]

    def lookup(self, shown: str, text: str) -> Any:
        self.used.add(shown)
        entry = self.files.get(shown)
        if not entry or entry.get("sha") != self.digest(text):
            return None
        try:
            return _decode(entry["data"], shown)
        except (KeyError, TypeError, ValueError):
            return None

    def store(self, shown: str, text: str, data: Any) -> None:
        self.used.add(shown)
        try:
            self.files[shown] = {"sha": self.digest(text), "data": _encode(data)}
        except _UncacheableError:
            self.files.pop(shown, None)
        self.dirty = True

    @staticmethod
    def _inputs_digest(inputs: Any) -> str:
        return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=repr).encode("utf-8")).hexdigest()

    def passed(self, check: str, inputs: Any) -> bool:
        """True if ``check`` (a pure function of ``inputs``: it raises or passes) passed with these inputs."""
        return self.checks.get(check) == self._inputs_digest(inputs)

    def mark_passed(self, check: str, inputs: Any) -> None:
        digest = self._inputs_digest(inputs)
        if self.checks.get(check) != digest:
            self.checks[check] = digest
            self.dirty = True

    def save(self) -> None:
        """Write the cache if anything changed (keeping only the files read this time); never fails a command."""
        gone = set(self.files) - self.used
        if not (self.dirty or gone):
            return
        for shown in gone:
            del self.files[shown]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            data = {"version": self.version, "files": self.files, "checks": self.checks}
            tmp.write_text(json.dumps(data), encoding="utf-8")
            tmp.replace(self.path)
        except OSError:
            pass  # a read-only checkout still works, just without the cache
