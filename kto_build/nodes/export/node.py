"""Exports (project.yml ``exports``): a model written as a TRL-ready dataset.

::

    exports:
      haiku_kto:
        model: kto                 # the SQL model to export
        format: kto                # kto | dpo | raw
        style: standard            # standard (strings) | conversational ({role, content} lists)
        outputs: [parquet, jsonl, save_to_disk]
        path: target/exports/dev/haiku_kto  # default: <target dir>/exports/<target>/<name>
        split: train
        weights: {desirable_weight: 1.0, undesirable_weight: 1.0}   # KTO balance check
        push_to_hub:
          repo_id: you/haiku-kto
          private: true
          config_name: default
          split: train
          token_env: HF_TOKEN      # the NAME of the environment variable holding the token

Each target writes its own folder by default (``target/exports/dev/haiku_kto``,
``target/exports/prod/haiku_kto``), so ``run -t prod`` never overwrites dev's files.

An export rebuilds when its model's data version changes, its settings
change, an output is missing or is not the file it wrote (a SHA-256 per
file is kept in its state), or a configured push has not happened yet; it
never creates a DuckDB table. In conversational style the generator's system
prompt (a ``system_prompt`` column of the model, when present and not empty)
becomes the first message of ``prompt``. The format checks in ``checks.check_format`` (TRL) run
first: an error stops the export before any file is written.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ...errors import KtoBuildError
from ...sql import quote
from ...yamlio import ANY, BOOL, NUM, STR, List, Map, OneOf, Scalar, tag_list
from ..base import Node, NodeResult
from .checks import COLUMNS
from .files import digest, files, write_empty_shard

if TYPE_CHECKING:
    from ..base import NodeContext

FORMATS = ("kto", "dpo", "raw")
STYLES = ("standard", "conversational")
OUTPUTS = ("parquet", "jsonl", "save_to_disk")
#: column -> role of the message it becomes in conversational style
ROLES = {"prompt": "user", "completion": "assistant", "chosen": "assistant", "rejected": "assistant"}

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

HUB_SPEC = Map({"repo_id": STR, "private": BOOL, "config_name": STR, "split": STR, "token_env": STR,
                "commit_message": STR, "revision": STR}, required=("repo_id",))


@dataclass(eq=False)  # identity: two nodes are never equal by their fields
class ExportNode(Node):
    """An export: a model written as a Hugging Face dataset (KTO, DPO or raw) with its card."""
    model: str = ""
    format: str = "kto"
    style: str = "standard"
    outputs: list[str] = field(default_factory=lambda: list(OUTPUTS))
    out_dir: Path = Path(".")
    split: str = "train"
    hub: dict | None = None
    weights: dict = field(default_factory=dict)
    columns: list[str] | None = None
    pretty_name: str = ""
    card: bool = True
    root: Path = Path(".")
    license: str | None = None

    kind: ClassVar[str] = "export"
    produces_table: ClassVar[bool] = False
    SPEC: ClassVar = Map(
        {
            "model": STR,
            "format": Scalar(str, choices=FORMATS),
            "style": Scalar(str, choices=STYLES),
            "outputs": List(Scalar(str, choices=OUTPUTS)),
            "path": STR,
            "split": STR,
            "push_to_hub": HUB_SPEC,
            "weights": Map({"desirable_weight": NUM, "undesirable_weight": NUM}),
            "columns": List(STR),
            "description": STR,
            "pretty_name": STR,
            "card": BOOL,
            "tags": OneOf(STR, List(STR)),
            "meta": ANY,
        },
        required=("model", "format"),
    )

    @classmethod
    def from_config(cls, name: str, cfg, project) -> ExportNode:
        hub = dict(cfg["push_to_hub"]) if cfg.get("push_to_hub") else None
        if hub is not None:
            env = hub.setdefault("token_env", "HF_TOKEN")
            hub_cfg = cfg["push_to_hub"]
            if not _ENV_NAME.match(env) or env.startswith("hf_"):
                raise KtoBuildError("'token_env' names the environment variable that holds the token, not the "
                                    "token itself", cfg.path, hub_cfg.line_of("token_env"),
                                    hint="e.g. token_env: HF_TOKEN, then export HF_TOKEN=...")
            hub.setdefault("private", True)
            hub.setdefault("config_name", "default")
        if cfg.get("columns") and cfg["format"] != "raw":
            raise KtoBuildError(f"'columns' is for format raw; a {cfg['format']} export writes exactly TRL's "
                                f"columns ({', '.join(COLUMNS[cfg['format']])})", cfg.path, cfg.line_of("columns"))
        outputs = list(cfg.get("outputs", OUTPUTS))
        if not outputs and hub is None:
            raise KtoBuildError(f"export '{name}' writes nothing: list outputs or add push_to_hub", cfg.path,
                                cfg.line_of("outputs"), hint="outputs: [parquet, jsonl, save_to_disk]")
        path = cfg.get("path")
        out_dir = (project.root / path) if path else (project.target_dir / "exports" / project.target / name)
        return cls(
            name=name, path=cfg.path, line=cfg.line, depends_on=[str(cfg["model"]).lower()],
            tags=tag_list(cfg.get("tags")), description=cfg.get("description", ""),
            config=dict(cfg), cfg=cfg, model=str(cfg["model"]).lower(), format=cfg["format"],
            style=cfg.get("style", "standard"), outputs=list(dict.fromkeys(outputs)), out_dir=out_dir,
            split=cfg.get("split", "train"), hub=hub, weights=dict(cfg.get("weights") or {}),
            columns=list(cfg["columns"]) if cfg.get("columns") else None, pretty_name=cfg.get("pretty_name", ""),
            card=cfg.get("card", True), root=project.root, license=project.config.get("license"),
        )

    @property
    def materialized(self) -> str:
        return "files" if self.outputs else "hub"

    def definition(self):
        return {"model": self.model, "format": self.format, "style": self.style, "outputs": self.outputs,
                "dir": self._display(self.out_dir), "split": self.split, "hub": self.hub, "weights": self.weights,
                "columns": self.columns, "card": self.card, "license": self.license,
                "description": self.description, "pretty_name": self.pretty_name}

    def summary(self) -> dict:
        d = super().summary()
        d.update(model=self.model, format=self.format, outputs=self.output_paths(),
                 push_to_hub=(self.hub or {}).get("repo_id"))
        return d

    # ----------------------------------------------------------- staleness
    def _display(self, p: Path) -> str:
        try:
            return str(p.relative_to(self.root))
        except ValueError:
            return str(p)

    def output_paths(self) -> dict[str, str]:
        files = {"parquet": f"{self.split}.parquet", "jsonl": f"{self.split}.jsonl", "save_to_disk": "dataset"}
        out = {o: self._display(self.out_dir / files[o]) for o in self.outputs}
        if self.card and self.outputs:
            out["card"] = self._display(self.out_dir / "README.md")
        return out

    def stale_reason(self, ctx: NodeContext) -> str | None:
        if ctx.state is None:
            return None
        missing = [p for p in self.output_paths().values() if not (self.root / p).exists()]
        if missing:
            return f"files missing: {missing[0]}"
        stored = ctx.state.extra.get("hashes") or {}
        for shown, (size, mtime, sha) in stored.items():
            now = self.root / shown
            if not now.is_file():
                return f"files missing: {shown}"
            st = now.stat()
            if (st.st_size, st.st_mtime_ns) == (size, mtime):
                continue  # untouched since written: no need to hash it again
            if digest(now) != sha:
                return f"files changed: {shown}"
        if self.hub and not ctx.offline and not ctx.state.extra.get("pushed"):
            return f"not pushed to {self.hub['repo_id']} yet"
        return None

    def plan_detail(self, ctx: NodeContext) -> str | None:
        where = ", ".join(self.outputs) or ""
        if self.hub:
            where += (", " if where else "") + f"hub {self.hub['repo_id']}"
        return f"{self.format} format from model {self.model} -> {where}"

    # ----------------------------------------------------------------- run
    def select_sql(self, types: dict[str, str]) -> str:
        """The SELECT that yields exactly the exported columns."""
        if self.format == "raw":
            cols = self.columns or list(types)
            missing = [c for c in cols if c not in types]
            if missing:
                from ...errors import did_you_mean

                raise KtoBuildError(f"export '{self.name}': model '{self.model}' has no column '{missing[0]}'",
                                    self.path, self.line_of("columns"), hint=did_you_mean(missing[0], types))
            return "select " + ", ".join(quote(c) for c in cols) + f" from {quote(self.model)}"
        parts = []
        for c in COLUMNS[self.format]:
            qc = quote(c)
            if c == "label":
                parts.append(f"{qc}")
            elif self.style == "standard":
                parts.append(qc)
            elif types[c] == "VARCHAR" and c == "prompt" and types.get("system_prompt") == "VARCHAR":
                user, system = "{'role': 'user', 'content': prompt}", "{'role': 'system', 'content': system_prompt}"
                parts.append(f"case when coalesce(system_prompt, '') = '' then [{user}] "
                             f"else [{system}, {user}] end as prompt")
            elif types[c] == "VARCHAR":
                parts.append(f"[{{'role': '{ROLES[c]}', 'content': {qc}}}] as {qc}")
            else:
                parts.append(f"list_transform({qc}, lambda m: {{'role': m.role, 'content': m.content}}) as {qc}")
        return "select " + ", ".join(parts) + f" from {quote(self.model)}"

    def features(self, arrow_schema):
        import datasets

        if self.format == "raw":
            return datasets.Features.from_arrow_schema(arrow_schema)
        text = datasets.Value("string")
        if self.style == "conversational":
            text = datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")})
        feats = {c: (datasets.Value("bool") if c == "label" else text) for c in COLUMNS[self.format]}
        return datasets.Features(feats)

    def run(self, ctx: NodeContext) -> NodeResult:
        from ...state import relations
        from . import card as cardmod
        from .checks import check_format

        where = (self.path, self.line)
        upstream = ctx.states.get(self.model)
        if upstream is not None and upstream.extra.get("tests_failed"):
            raise KtoBuildError(f"export '{self.name}': model '{self.model}' failed its data tests, not exporting "
                                f"it: {upstream.extra['tests_failed']}", *where)
        token = self.token() if self.hub and not ctx.offline else None  # fail before any work
        with ctx.connect(read_only=True) as con:
            if self.model not in relations(con):
                raise KtoBuildError(f"export '{self.name}': model '{self.model}' has not been built "
                                    f"(run 'kto-build run --select +{self.model}')", *where)
            report = check_format(con, self.model, self.format, self.style, self.weights)
            if report.errors:
                raise KtoBuildError(f"export '{self.name}' ({self.format} format): " + "; ".join(report.errors),
                                    *where)
            types = {r[0]: r[1] for r in con.execute(f"describe {quote(self.model)}").fetchall()}
            try:
                table = con.sql(self.select_sql(types)).to_arrow_table()
            except KtoBuildError:
                raise
            except Exception as exc:  # duckdb.Error
                raise KtoBuildError(f"export '{self.name}': {str(exc).splitlines()[0]}", *where) from None
            stats = cardmod.collect_stats(con, ctx.project, self, table.num_rows)

        import datasets  # lazy: ~1.4 s

        datasets.disable_progress_bars()
        feats = self.features(table.schema)
        try:
            table = table.cast(feats.arrow_schema)
        except Exception as exc:  # pyarrow.ArrowInvalid and friends
            raise KtoBuildError(f"export '{self.name}': cannot convert to a datasets table: {exc}", *where) from None
        info = datasets.DatasetInfo(description=self.description or "", license=self.license or "", features=feats)
        ds = datasets.Dataset(datasets.table.InMemoryTable(table), info=info)
        columns = {name: _feature_name(f) for name, f in feats.items()}
        written = self._write(ds, cardmod.render(ctx.project, self, stats, columns) if self.card else None)
        warnings = list(report.warnings)
        pushed = None
        if self.hub:
            if ctx.offline:
                warnings.append(f"offline: not pushed to {self.hub['repo_id']} (the next online run pushes)")
            else:
                pushed = self._push(ds, ctx, stats, columns, token)
        hashes = {}
        for shown in written.values():
            for f in files(self.root / shown):
                st = f.stat()
                hashes[self._display(f)] = [st.st_size, st.st_mtime_ns, digest(f)]
        with ctx.transaction() as tx:
            tx.save(rows=ds.num_rows, version_parts=[ds._fingerprint],
                    extra={"files": written, "pushed": pushed, "stats": _jsonable(stats), "hashes": hashes})
        shown = ", ".join(written.values()) if written else ""
        if pushed:
            shown += (", " if shown else "") + f"hub {pushed}"
        return NodeResult(rows=ds.num_rows, message=f"wrote {shown}", warnings=warnings,
                          extra={"files": written, "pushed": pushed})

    def _write(self, ds, card_text: str | None) -> dict[str, str]:
        d = self.out_dir
        d.mkdir(parents=True, exist_ok=True)
        written: dict[str, str] = {}
        tmp_tag = f".tmp-{os.getpid()}"
        for out in self.outputs:
            if out == "parquet":
                final = d / f"{self.split}.parquet"
                tmp = final.with_name(final.name + tmp_tag)
                ds.to_parquet(str(tmp))
                os.replace(tmp, final)
            elif out == "jsonl":
                final = d / f"{self.split}.jsonl"
                tmp = final.with_name(final.name + tmp_tag)
                ds.to_json(str(tmp), lines=True, force_ascii=False)
                os.replace(tmp, final)
            else:
                final = d / "dataset"
                tmp = d / ("dataset" + tmp_tag)
                if tmp.exists():
                    shutil.rmtree(tmp)
                ds.save_to_disk(str(tmp))
                if ds.num_rows == 0:
                    write_empty_shard(ds, tmp)
                if final.exists():
                    shutil.rmtree(final)
                os.replace(tmp, final)
            written[out] = self._display(final)
        if card_text is not None and self.outputs:
            final = d / "README.md"
            tmp = final.with_name(final.name + tmp_tag)
            tmp.write_text(card_text, encoding="utf-8")
            os.replace(tmp, final)
            written["card"] = self._display(final)
        return written

    def hub_call(self, token: str) -> dict:
        """The exact keyword arguments given to ``Dataset.push_to_hub``."""
        h = self.hub or {}
        return {"repo_id": h["repo_id"], "config_name": h.get("config_name", "default"),
                "split": h.get("split") or self.split, "private": bool(h.get("private", True)), "token": token,
                "revision": h.get("revision"),
                "commit_message": h.get("commit_message") or f"kto-build export {self.name}"}

    def token(self) -> str:
        env = (self.hub or {}).get("token_env", "HF_TOKEN")
        value = os.environ.get(env, "").strip()
        if not value:
            raise KtoBuildError(f"export '{self.name}' pushes to {self.hub['repo_id']} but the environment "
                                f"variable {env} is not set", self.path, self.line_of("push_to_hub", "repo_id"),
                                hint=f"export {env}=<a write token>, or run with --offline to skip the push")
        return value

    def _push(self, ds, ctx: NodeContext, stats: dict, columns: dict, token: str) -> str:
        from . import card as cardmod

        kwargs = self.hub_call(token)
        try:
            ds.push_to_hub(**kwargs)
            if self.card:
                from kto_build.docs.cardpics import push_pictures  # pictures first: the card links to them

                push_pictures(self.out_dir, stats.get("pictures"), kwargs)
                self._push_card(cardmod.render(ctx.project, self, stats, columns, hub=True), kwargs)
        except KtoBuildError:
            raise
        except Exception as exc:  # huggingface_hub errors: one line, never the token
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].replace(token, "<token>")
            raise KtoBuildError(f"export '{self.name}': push to {kwargs['repo_id']} failed: "
                                f"{type(exc).__name__}: {first}", self.path, self.line) from None
        return kwargs["repo_id"]

    def _push_card(self, text: str, kwargs: dict) -> None:
        """Replace the card body on the Hub, keeping the configs/dataset_info datasets wrote."""
        import yaml
        from huggingface_hub import DatasetCard

        token, repo = kwargs["token"], kwargs["repo_id"]
        ours = yaml.safe_load(text.split("---\n", 2)[1])
        body = text.split("---\n", 2)[2]
        try:
            meta = DatasetCard.load(repo, repo_type="dataset", token=token).data.to_dict()
        except Exception:
            meta = {}
        for k, v in ours.items():
            if k != "configs" or "configs" not in meta:
                meta[k] = v
        card = DatasetCard("---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n" + body)
        card.push_to_hub(repo, repo_type="dataset", token=token, revision=kwargs.get("revision"),
                         commit_message=f"{kwargs['commit_message']}: dataset card")


def _feature_name(f) -> str:
    import datasets

    if isinstance(f, datasets.Value):
        return f.dtype
    if isinstance(f, datasets.List):
        if isinstance(f.feature, dict):
            return "list of {role, content} messages"
        return f"list of {_feature_name(f.feature)}"
    return type(f).__name__


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, float):
        return round(value, 6)
    return value
