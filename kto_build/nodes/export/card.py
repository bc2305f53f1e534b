"""The dataset card (README.md with Hub YAML metadata) written beside every export.

It lists the lineage (sources, generators with their settings, the annotation
backend, the SQL of every model between them), row counts, label balance,
annotator count and agreement. Secrets never reach it: settings whose key
looks like a credential are replaced by ``<redacted>`` unless the key names an
environment variable (``*_env``), and tokens are only ever read from the
environment by the export, never passed here.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import yaml

from ...sql import quote

if TYPE_CHECKING:
    from ..base import ProjectView as Project
    from .node import ExportNode

_SECRET_KEY = re.compile(r"(token|secret|password|api_?key|authorization|credential)", re.I)
SIZES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
         (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]


class _CardDumper(yaml.SafeDumper):
    """Multi-line strings (prompt templates, system prompts) as readable ``|`` blocks."""


def _str(dumper, data):
    style = "|" if "\n" in data and not any(c in data for c in "\t\r") and not data.endswith(" ") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_CardDumper.add_representer(str, _str)


def _yaml(value) -> str:
    return yaml.dump(value, Dumper=_CardDumper, sort_keys=False, allow_unicode=True, width=100).rstrip()


def size_category(n: int) -> str:
    for limit, name in SIZES:
        if n < limit:
            return name
    return "n>1T" if n >= 10**12 else "1B<n<10B"


def redact(value: Any) -> Any:
    """Settings with credential-like keys and a text value become '<redacted>' (``*_env`` names stay; numbers
    such as ``max_new_tokens: 40`` are generation settings, never credentials)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = str(k)
            if _SECRET_KEY.search(key) and not key.endswith("_env") and isinstance(v, str):
                out[key] = "<redacted>"
            else:
                out[key] = redact(v)
        return out
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """YMap/YList -> dict/list so yaml.safe_dump can write them."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def collect_stats(con, project: Project, node: ExportNode, table_rows: int) -> dict:
    """Numbers for the card, read from the model and the tables upstream of it."""
    from ...state import relations

    rels = relations(con)
    stats: dict[str, Any] = {"rows": table_rows}
    q = quote(node.model)
    cols = {r[0]: r[1] for r in con.execute(f"describe {q}").fetchall()}
    if node.format == "kto" and cols.get("label") == "BOOLEAN":
        pos, neg = con.execute(f"select count(*) filter (where label), count(*) filter (where not label) "
                               f"from {q}").fetchone()
        stats.update(desirable=pos, undesirable=neg)
    if "prompt" in cols:
        stats["prompts"] = con.execute(f"select count(distinct prompt) from {q}").fetchone()[0]
    if "label_source" in cols:  # people or judges (AI feedback): rows per source
        stats["label_sources"] = dict(con.execute(f"select coalesce(label_source, 'unknown'), count(*) from {q} "
                                                  "group by all order by 1").fetchall())
    upstream = project.graph.ancestors(node.model) | {node.model}
    annotators, answers, logged, agreement = set(), 0, 0, None
    for name in sorted(upstream):
        if name not in rels:
            continue
        tcols = {r[0] for r in con.execute(f"describe {quote(name)}").fetchall()}
        kind = project.nodes[name].kind
        if {"record_id", "annotator_id", "value"} <= tcols and kind != "model":  # an annotation log
            rows = con.execute(f"select distinct annotator_id from ({_current(name, tcols)})").fetchall()
            annotators |= {r[0] for r in rows}
            answers += con.execute(f"select count(*) from ({_current(name, tcols)})").fetchone()[0]
            logged += con.execute(f"select count(*) from {quote(name)}").fetchone()[0]
        if {"agreement", "annotators"} <= tcols and agreement is None:
            avg, full, n = con.execute(
                f"select avg(agreement), count(*) filter (where agreement >= 1), count(*) from {quote(name)} "
                "where annotators >= 2").fetchone()
            agreement = {"table": name, "mean": avg, "unanimous": full, "rated_by_2_or_more": n}
    stats["annotators"] = len(annotators)
    stats["answers"] = answers
    stats["logged"] = logged
    if agreement is not None:
        stats["agreement"] = agreement
    stats["pictures"] = _pictures(con, project, node)
    return stats


def _current(table: str, cols: set[str]) -> str:
    """The answers that count now: per (record, question, annotator) the latest event, when it is a submit
    (as Argilla shows it: a discard or draft saved after a submit withdraws it)."""
    keys = ", ".join(c for c in ("record_id", "question", "annotator_id") if c in cols)
    order = ", ".join(c + " desc" for c in ("response_updated_at", "pulled_at") if c in cols) or "record_id"
    status = " where status = 'submitted'" if "status" in cols else ""
    return (f"select * from (select *, row_number() over (partition by {keys} order by {order}) as newest "
            f"from {quote(table)}) where newest = 1" + (status.replace(" where", " and") if status else ""))


def lineage(project: Project, model: str) -> list[dict]:
    """Every node the exported model reads, in build order, with its settings or SQL."""
    names = [n for n in project.graph.order if n in project.graph.ancestors(model) or n == model]
    out = []
    for name in names:
        n = project.nodes[name]
        item: dict[str, Any] = {"name": name, "kind": n.kind, "description": n.description or ""}
        if n.kind == "model":
            item["sql"] = n.sql.strip()
        else:
            settings = n.definition()
            if isinstance(settings, str):  # some kinds return their canonical JSON
                try:
                    settings = json.loads(settings)
                except ValueError:
                    pass
            if n.kind == "generation" and isinstance(settings, dict):  # what decides the text, too
                for entry, m in zip(settings.get("models") or [], getattr(n, "models", []), strict=False):
                    entry["generation"] = getattr(m, "generation", {})
            item["settings"] = redact(_plain(settings))
        out.append(item)
    return out


def render(project: Project, node: ExportNode, stats: dict, columns: dict[str, str], hub: bool = False) -> str:
    """README.md text: YAML metadata for the Hub, then the card body."""
    cfg = project.config
    rows = stats.get("rows", 0)
    config_name = (node.hub or {}).get("config_name", "default") if hub else "default"
    split = ((node.hub or {}).get("split") or node.split) if hub else node.split
    if hub:
        data_path = f"{'data' if config_name == 'default' else config_name}/{split}-*"
    else:
        data_path = f"{node.split}.parquet" if "parquet" in node.outputs else f"{node.split}.jsonl"
    tags = ["kto-build", "preference", "trl", "human-feedback"]
    if node.format in ("kto", "dpo"):
        tags.insert(1, node.format)
    tags += [t for t in node.tags if t not in tags]
    meta: dict[str, Any] = {}
    if cfg.get("license"):
        meta["license"] = str(cfg["license"])
    meta["pretty_name"] = node.pretty_name or node.name
    meta["size_categories"] = [size_category(rows)]
    meta["task_categories"] = ["text-generation"]
    meta["tags"] = tags
    meta["configs"] = [{"config_name": config_name, "data_files": [{"split": split, "path": data_path}]}]
    head = "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"
    return head + body(project, node, stats, columns)


def body(project: Project, node: ExportNode, stats: dict, columns: dict[str, str]) -> str:
    cfg = project.config
    title = node.pretty_name or node.name
    lines = [f"# {title}", ""]
    desc = node.description or cfg.get("description") or ""
    if desc:
        lines += [desc.strip(), ""]
    fmt = {"kto": "KTO (TRL `KTOTrainer`: `prompt`, `completion`, boolean `label`)",
           "dpo": "DPO (TRL `DPOTrainer`: `prompt`, `chosen`, `rejected`)",
           "raw": "raw table"}[node.format]
    lines += [f"Built with kto-build from project `{project.name}` "
              f"(target `{project.target}`), model `{node.model}`.", "",
              "## Format", "", f"- {fmt}, {node.style} style, split `{node.split}`.", "",
              "| column | type |", "|---|---|"]
    lines += [f"| `{c}` | {t} |" for c, t in columns.items()]
    lines += _size_lines(node, stats)
    rules = {k: project.vars[k] for k in sorted(_vars_upstream(project, node.model)) if k in project.vars}
    if rules:
        lines += ["", "## Rules (project vars read by the SQL)", "", "```yaml",
                  yaml.safe_dump(_plain(rules), sort_keys=False, allow_unicode=True).rstrip(), "```"]
    lines += [f"\n![{alt}]({name})" for alt, name in stats.get("pictures") or []]
    lines += ["", "## Lineage", ""]
    for item in lineage(project, node.model):
        lines.append(f"### {item['kind']} `{item['name']}`")
        lines.append("")
        if item["description"]:
            lines += [item["description"].strip(), ""]
        if "sql" in item:
            lines += ["```sql", item["sql"], "```", ""]
        else:
            lines += ["```yaml", _yaml(item["settings"]), "```", ""]
    lines += _use_lines(node)
    return "\n".join(lines)


def _size_lines(node: ExportNode, stats: dict) -> list[str]:
    """The card's "Size and balance" section."""
    lines: list[str] = []
    lines += ["", "## Size and balance", "", f"- rows: {stats.get('rows', 0)}"]
    if "prompts" in stats:
        lines.append(f"- distinct prompts: {stats['prompts']}")
    if "desirable" in stats:
        pos, neg = stats["desirable"], stats["undesirable"]
        total = pos + neg
        share = f" ({pos / total:.0%} desirable)" if total else ""
        lines.append(f"- label balance: {pos} desirable (true) : {neg} undesirable (false){share}")
        if pos and neg:
            lines.append(f"- TRL recommends (desirable_weight x {pos}) : (undesirable_weight x {neg}) between "
                         "1:1 and 4:3")
    lines.append(f"- annotators: {stats.get('annotators', 0)} ({stats.get('answers', 0)} current submitted answers; "
                 f"the log keeps {stats.get('logged', 0)} events)")
    if stats.get("label_sources"):
        lines.append(label_sources_line(stats["label_sources"]))
    ag = stats.get("agreement")
    if ag and ag.get("rated_by_2_or_more"):
        lines.append(f"- agreement (from `{ag['table']}`, items with 2+ answers): mean majority share "
                     f"{ag['mean']:.3f}, unanimous {ag['unanimous']} of {ag['rated_by_2_or_more']}")
    if not stats.get("rows"):
        lines += ["", "**This export is empty.** datasets' `load_dataset` refuses a 0-row Parquet or JSONL file "
                  "(\"Instruction 'train' corresponds to no data\"), so `load_dataset` on this folder fails until "
                  "rows arrive. " + ("Load it with `datasets.load_from_disk(\"dataset\")` (this folder): 0 rows, "
                                     "the exact features." if "save_to_disk" in node.outputs else
                                     "Read the file with `pyarrow.parquet.read_table` or add `save_to_disk` to the "
                                     "export's outputs.")]
    return lines


def _use_lines(node: ExportNode) -> list[str]:
    """The card's "Use" section: how to load the dataset and hand it to TRL."""
    lines: list[str] = []
    lines += ["## Use", "", "```python", "from datasets import load_dataset", ""]
    if node.hub:
        cfg_name = node.hub.get("config_name", "default")
        extra = f', "{cfg_name}"' if cfg_name != "default" else ""
        hub_split = node.hub.get("split") or node.split
        lines.append(f'ds = load_dataset("{node.hub["repo_id"]}"{extra}, split="{hub_split}")')
    if "parquet" in node.outputs:
        lines.append(f'ds = load_dataset("parquet", data_files="{node.split}.parquet", split="train")  # this folder')
    elif "jsonl" in node.outputs:
        lines.append(f'ds = load_dataset("json", data_files="{node.split}.jsonl", split="train")  # this folder')
    if node.format == "kto":
        lines += ["# from trl import KTOConfig, KTOTrainer", "# KTOTrainer(model=..., args=KTOConfig(...), "
                  "train_dataset=ds, processing_class=tokenizer)"]
    elif node.format == "dpo":
        lines += ["# from trl import DPOConfig, DPOTrainer", "# DPOTrainer(model=..., args=DPOConfig(...), "
                  "train_dataset=ds, processing_class=tokenizer)"]
    lines += ["```", ""]
    return lines


def label_sources_line(sources: dict[str, int]) -> str:
    """Where the labels came from: people, or a judge model (AI feedback), per row of the export."""
    def said(src: str) -> str:
        parts = [("people" if p == "human" else f"judge `{p[6:]}` (AI feedback)" if p.startswith("judge:") else p)
                 for p in src.split("+")]
        return " and ".join(parts)

    return "- labels from: " + "; ".join(f"{n} rows from {said(src)}" for src, n in sources.items())


def _vars_upstream(project: Project, model: str) -> set[str]:
    out: set[str] = set()
    for name in project.graph.ancestors(model) | {model}:
        out |= set(project.nodes[name].vars_used())
    return out


def _pictures(con, project: Project, node: ExportNode) -> list[tuple[str, str]]:
    """Label-balance and agreement plots written beside the card (kto_build/docs); none without the docs extra.
    A Hub-only export (no ``outputs``) renders them into its export folder too: they are pushed from there."""
    if not node.card or not (node.outputs or node.hub):
        return []
    try:
        import altair  # noqa: F401
        import vl_convert  # noqa: F401
    except ImportError:  # pip install kto-build[docs]
        return []
    from ...docs import card_pictures

    return card_pictures(con, project, node, node.out_dir)
