"""Prompt sources: jsonl / csv / parquet files, or a ``datasets`` dataset.

With ``text`` set, the table holds ``prompt_id`` (the id column, else a
content hash of the text), ``prompt`` (the text column) and the remaining
input columns; without it the file is loaded as it is (like a dbt seed). An
unchanged input (content hash) is skipped.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..errors import KtoBuildError
from ..sql import literal, quote
from ..yamlio import ANY, STR, Map, OneOf, Scalar
from .base import Node, NodeResult

if TYPE_CHECKING:
    from .base import NodeContext

READERS = {
    ".jsonl": "read_json_auto({path}, format='newline_delimited')",
    ".ndjson": "read_json_auto({path}, format='newline_delimited')",
    ".json": "read_json_auto({path})",
    ".csv": "read_csv_auto({path}, header=true)",
    ".tsv": "read_csv_auto({path}, header=true, delim='\t')",
    ".parquet": "read_parquet({path})",
}


@dataclass
class SourceNode(Node):
    root: Path = Path(".")

    kind: ClassVar[str] = "source"
    short: ClassVar[bool] = True
    SPEC: ClassVar = Map(
        {
            "path": STR,
            "dataset": STR,
            "split": STR,
            "revision": STR,
            "config": STR,
            "text": STR,
            "id": STR,
            "description": STR,
            "tags": OneOf(STR, ANY),
            "format": Scalar(str, choices=("jsonl", "json", "csv", "tsv", "parquet")),
            # `dataset: json|csv|parquet` + local files (relative to the project): no hub, no network
            "data_files": OneOf(STR, ANY, what="a file, a list of files or a mapping split -> files"),
        },
    )

    @classmethod
    def from_config(cls, name: str, cfg, project) -> SourceNode:
        if ("path" in cfg) == ("dataset" in cfg):
            raise KtoBuildError(f"prompt source '{name}' needs exactly one of 'path' or 'dataset'",
                                cfg.path, cfg.line)
        if "path" in cfg:
            suffix = "." + cfg["format"] if "format" in cfg else Path(cfg["path"]).suffix.lower()
            if suffix not in READERS:
                raise KtoBuildError(f"cannot read '{cfg['path']}': use .jsonl, .csv, .tsv, .parquet "
                                    "or set 'format'", cfg.path, cfg.line_of("path"))
        tags = cfg.get("tags", [])
        return cls(name=name, path=cfg.path, line=cfg.line, config=cfg, root=project.root,
                   description=cfg.get("description", ""), tags=[tags] if isinstance(tags, str) else list(tags))

    # ------------------------------------------------------------ staleness
    @property
    def file(self) -> Path | None:
        return self.root / self.config["path"] if "path" in self.config else None

    def content_hash(self, ctx: NodeContext) -> str:
        """sha256 of the input file; reuses the stored hash when size and mtime match."""
        f = self.file
        if f is None:  # datasets: the definition (name, split, revision) is the version
            local = [p for p in self._data_files_list() if p.is_file()]
            if not local:
                return "dataset"
            h = hashlib.sha256()  # plus the content of local data_files
            for p in local:
                h.update(p.read_bytes())
            return h.hexdigest()[:16]
        try:
            st = os.stat(f)
        except FileNotFoundError:
            raise KtoBuildError(f"prompt file '{self.config['path']}' not found", self.path,
                                self.config.line_of("path")) from None
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
        prev = ctx.state.extra if ctx.state else {}
        if prev.get("stamp") == stamp and prev.get("content_hash"):
            return prev["content_hash"]
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()[:16]

    def stale_reason(self, ctx: NodeContext) -> str | None:
        if ctx.state is None:
            return None
        if self.content_hash(ctx) != ctx.state.extra.get("content_hash"):
            return "input file changed"
        return None

    # ------------------------------------------------------------------ run
    def run(self, ctx: NodeContext) -> NodeResult:
        content_hash = self.content_hash(ctx)
        with ctx.transaction() as tx:
            con = tx.con
            con.execute(f"CREATE OR REPLACE TABLE {quote(self.name)} AS {self.select_sql(con)}")
            rows = con.execute(f"SELECT count(*) FROM {quote(self.name)}").fetchone()[0]
            stamp = None
            if self.file is not None:
                st = os.stat(self.file)
                stamp = f"{st.st_size}:{st.st_mtime_ns}"
            tx.save(rows=rows, version_parts=[content_hash], extra={"content_hash": content_hash, "stamp": stamp})
        return NodeResult(rows=rows)

    def select_sql(self, con) -> str:
        """The SELECT this source's table is built from (``kto-build plan`` evaluates it in memory)."""
        text, id_col = self.config.get("text"), self.config.get("id")
        if self.file is not None and _blank(self.file):
            raise KtoBuildError(f"{self.config.get('path')} is empty (no prompts to load)", self.path,
                                self.config.line_of("path"), hint="add rows to the file or point 'path' at "
                                                                  "another one")
        if self.file is not None:
            suffix = "." + self.config["format"] if "format" in self.config else self.file.suffix.lower()
            relation = READERS[suffix].format(path=literal(str(self.file)))
        else:
            relation = self._register_dataset(con)
        try:
            columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
        except Exception as exc:
            raise KtoBuildError(f"cannot read prompt source: {str(exc).splitlines()[0]}",
                                self.path, self.line) from None
        for key, col in (("text", text), ("id", id_col)):
            if col is not None and col not in columns:
                raise KtoBuildError(
                    f"column '{col}' not found in {self.config.get('path') or self.config.get('dataset')} "
                    f"(columns: {', '.join(columns)})", self.path, self.config.line_of(key))
        if text is None:  # a plain table, loaded as it is
            return f"SELECT * FROM {relation}"
        excluded = [c for c in (text, id_col) if c]
        excluded += [c for c in ("prompt_id", "prompt") if c in columns and c not in excluded]
        rest = "".join(", " + quote(c) for c in columns if c not in excluded)
        id_expr = f"CAST({quote(id_col)} AS VARCHAR)" if id_col else f"md5(CAST({quote(text)} AS VARCHAR))"
        return f"SELECT {id_expr} AS prompt_id, CAST({quote(text)} AS VARCHAR) AS prompt{rest} FROM {relation}"

    def _data_files(self):
        """``data_files`` with paths made relative to the project root."""
        def fix(v):
            if isinstance(v, str):
                return str(self.root / v)
            if isinstance(v, list):
                return [fix(x) for x in v]
            if isinstance(v, dict):
                return {str(k): fix(x) for k, x in v.items()}
            return v

        return fix(self.config.get("data_files"))

    def _data_files_list(self) -> list[Path]:
        v = self._data_files()
        flat = v if isinstance(v, list) else list(v.values()) if isinstance(v, dict) else [v] if v else []
        out = []
        for x in flat:
            out += [Path(y) for y in (x if isinstance(x, list) else [x])]
        return out

    def _register_dataset(self, con) -> str:
        import datasets  # lazy: ~1.4 s

        cfg = self.config
        try:
            extra = {"data_files": self._data_files()} if "data_files" in cfg else {}
            ds = datasets.load_dataset(cfg["dataset"], cfg.get("config"), split=cfg.get("split", "train"),
                                       revision=cfg.get("revision"), **extra)
        except Exception as exc:
            raise KtoBuildError(f"cannot load dataset '{cfg['dataset']}': {str(exc).splitlines()[0]}",
                                self.path, self.config.line_of("dataset")) from None
        con.register("_kto_source_arrow", ds.data.table)
        return "_kto_source_arrow"


def _blank(path) -> bool:
    """An existing file with nothing but whitespace (an empty prompt file)."""
    try:
        with open(path, "rb") as fh:
            return not fh.read(65536).strip() and not fh.read(1)
    except OSError:
        return False
