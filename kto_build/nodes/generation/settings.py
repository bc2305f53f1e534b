"""Model entries: which LLM, with which settings, and what of that decides the text.

Import-light on purpose (no distilabel, no asyncio): ``ls``, ``plan`` and the
adapter read these definitions. A node kind that calls LLMs (generators,
judges) declares its ``models:`` with ``MODEL_SPEC`` and reads them with
``model_entries``.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from typing import Any

from ...errors import KtoBuildError, did_you_mean
from ...redact import register
from ...sql import fingerprint as hash_parts
from ...yamlio import ANY, BOOL, INT, NUM, STR, Dict, List, Map, OneOf, YMap

#: distilabel 1.5.3's LLM classes (distilabel.models.llms.__all__) and ours: known
#: without importing distilabel, so `ls` and `plan` can say "did you mean".
KNOWN_LLMS = (
    "AnthropicLLM", "AnyscaleLLM", "AzureOpenAILLM", "ClientvLLM", "CohereLLM", "GroqLLM", "InferenceEndpointsLLM",
    "LiteLLM", "LlamaCppLLM", "MistralLLM", "MixtureOfAgentsLLM", "MlxLLM", "OllamaLLM", "OpenAILLM", "TogetherLLM",
    "TransformersLLM", "VertexAILLM", "vLLM", "LlamaCppCompletionLLM",
)
#: LLMs that run in this process (no server): not skipped by --offline
LOCAL_LLMS = frozenset({"LlamaCppCompletionLLM", "LlamaCppLLM", "TransformersLLM", "vLLM", "MlxLLM"})
#: params of the LLM constructor that only say *how* to reach a model, not what
#: it writes; they stay out of the cache key (the one copy: the adapter imports it)
TRANSPORT_PARAMS = frozenset({
    "base_url", "timeout", "max_retries", "default_headers", "verbose", "n_threads", "n_threads_batch", "n_gpu_layers",
    "n_batch", "use_offline_batch_generation", "offline_batch_generation_block_until_done", "jobs_ids",
})
#: params that name the model; without one of them, ``base_url`` names it and joins the cache key
MODEL_PARAMS = frozenset({"model", "model_id", "model_path", "endpoint_name", "repo_id", "deployment_name"})
#: seconds one LLM call may take before it counts as failed (and is retried); a model's ``timeout:`` overrides it
DEFAULT_TIMEOUT = 120.0
#: retries of one call after its first attempt, unless a model says ``retries:``
DEFAULT_RETRIES = 4
SECRET_PARAMS = frozenset({"api_key", "token", "hf_token", "api_token", "access_token", "secret", "password"})

#: the keys of one entry under ``models:`` (generators, judges)
MODEL_KEYS = {
    "name": STR,
    "llm": STR,
    "params": Dict(ANY),
    "generation": Dict(ANY),
    "api_key_env": STR,
    "targets": OneOf(STR, List(STR), what="a target or a list of targets"),
    "concurrency": INT,
    "retries": INT,
    "timeout": NUM,
    "description": STR,
    "enabled": BOOL,
}
MODEL_SPEC = Map(MODEL_KEYS, required=("name", "llm"))


@dataclass
class ModelEntry:
    """One entry of a generator's or a judge's models: the LLM, its params and its call settings."""

    name: str
    llm: str
    params: dict
    generation: dict
    api_key_env: str | None
    concurrency: int | None
    retries: int
    timeout: float | None
    cfg: Any = None  # the YMap (for lines)

    @functools.cached_property
    def fingerprint(self) -> str:
        """What decides the text: LLM class, content params, generation kwargs."""
        content = {k: v for k, v in self.params.items()
                   if k not in TRANSPORT_PARAMS or (k == "base_url" and not MODEL_PARAMS & set(self.params))}
        return hash_parts(json.dumps({"llm": self.llm, "params": content, "generation": self.generation},
                                     sort_keys=True, default=str))

    @functools.cached_property
    def kwargs_json(self) -> str:
        return json.dumps(self.generation, sort_keys=True)

    @property
    def local(self) -> bool:
        """Runs in this process (no server): still called under ``run --offline``."""
        return self.llm in LOCAL_LLMS

    def line(self, key: str | None = None) -> int:
        if isinstance(self.cfg, YMap):
            return self.cfg.line_of(key) if key else self.cfg.line
        return 0


@dataclass
class ModelEntries:
    """A node's models for the current target: those it calls, and those marked ``enabled: false``."""

    active: list[ModelEntry]
    disabled: list[ModelEntry]


def model_entries(cfg, owner: str, project) -> ModelEntries:
    """Read ``cfg['models']`` (a list validated by ``MODEL_SPEC``) for ``project.target``.

    ``owner`` names the node in messages ("generator 'gens'"). Entries for other targets are left
    out; disabled ones are checked like the others but kept apart (``prune`` keeps their rows).
    """
    path = cfg.path
    targets = set((project.config.get("targets") or {}).keys())
    active: list[ModelEntry] = []
    disabled: list[ModelEntry] = []
    seen: set[str] = set()
    for m in cfg["models"]:
        if not _for_target(m, path, targets, project.target):
            continue
        if m["name"] in seen:
            raise KtoBuildError(f"model name '{m['name']}' is used twice in {owner}", path, m.line)
        seen.add(m["name"])
        entry = _entry(m, path)
        (active if m.get("enabled", True) else disabled).append(entry)
    by_fp: dict[str, ModelEntry] = {}
    for m in active:
        if m.fingerprint in by_fp:
            raise KtoBuildError(f"model '{m.name}' has the same LLM, params and generation settings as "
                                f"'{by_fp[m.fingerprint].name}'; they would share every generation", path,
                                m.line(), hint="change a setting or remove one of them")
        by_fp[m.fingerprint] = m
    if not active and disabled:
        raise KtoBuildError(f"every model of {owner} for target '{project.target}' has 'enabled: false'", path,
                            cfg.line_of("models"), hint="enable one, or disable the node itself (enabled: false)")
    if not active:
        raise KtoBuildError(f"{owner} has no model for target '{project.target}'", path,
                            cfg.line_of("models"), hint="list the target under a model's 'targets:'")
    return ModelEntries(active, disabled)


def _for_target(m, path: str, targets: set[str], target: str) -> bool:
    wanted = m.get("targets")
    if wanted is None:
        return True
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    for t in wanted:
        if targets and t not in targets:
            raise KtoBuildError(f"model '{m['name']}' lists unknown target '{t}'", path, m.line_of("targets"),
                                hint=did_you_mean(t, targets) or "targets: " + ", ".join(sorted(targets)))
    return target in wanted


def _entry(m, path: str) -> ModelEntry:
    llm = m["llm"]
    if "." not in llm and llm not in KNOWN_LLMS:
        raise KtoBuildError(f"unknown LLM class '{llm}'", path, m.line_of("llm"),
                            hint=did_you_mean(llm, KNOWN_LLMS)
                            or "use a distilabel LLM class name or a dotted path package.module.Class")
    params = dict(m.get("params") or {})
    for key in params:
        if str(key).lower() in SECRET_PARAMS:
            raise KtoBuildError(f"'{key}' in params would store a secret in sources.yml", path,
                                m["params"].line_of(key) if isinstance(m["params"], YMap) else m.line,
                                hint="name the environment variable that holds it: api_key_env: MY_KEY")
    for key in ("concurrency", "retries"):
        if key in m and m[key] < (1 if key == "concurrency" else 0):
            raise KtoBuildError(f"'{key}' must be at least {1 if key == 'concurrency' else 0}", path,
                                m.line_of(key))
    return ModelEntry(name=m["name"], llm=llm, params=plain(params), generation=plain(dict(m.get("generation") or {})),
                      api_key_env=m.get("api_key_env"), concurrency=m.get("concurrency"),
                      retries=m.get("retries", DEFAULT_RETRIES), timeout=m.get("timeout", DEFAULT_TIMEOUT), cfg=m)


def plain(value):
    """YAML containers -> plain dict/list (stable JSON, picklable)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


#: ``ray:`` of a node that calls LLMs (generators, judges): its calls run in Ray actors (``ray_executor``)
RAY_SPEC = Map({"address": STR, "actors": INT, "num_cpus": NUM, "num_gpus": NUM,
                "resources": OneOf(Dict(NUM), List(Dict(NUM)), what="a mapping or a list of mappings")},
               required=("address",))


@dataclass(frozen=True)
class RaySettings:
    """Where and how a node's calls run on Ray: ``actors`` actors per model, each with these resources."""

    address: str
    actors: int = 2
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    resources: Any = None  # a mapping, or a list of them: actor i gets resources[i % len]
    path: str = ""
    line: int = 0


def ray_settings(cfg, path: str) -> RaySettings | None:
    """``cfg['ray']`` (validated by ``RAY_SPEC``), or None. Not part of any fingerprint: only *where* calls run."""
    r = cfg.get("ray")
    if r is None:
        return None
    for key, least in (("actors", 1), ("num_cpus", 0), ("num_gpus", 0)):
        if key in r and r[key] < least:
            raise KtoBuildError(f"'ray.{key}' must be at least {least}", path, r.line_of(key))
    res = r.get("resources")
    return RaySettings(address=str(r["address"]), actors=int(r.get("actors", 2)), num_cpus=float(r.get("num_cpus", 1)),
                       num_gpus=float(r.get("num_gpus", 0)), resources=plain(res) if res is not None else None,
                       path=path, line=cfg.line_of("ray"))


# ------------------------------------------------ shared by every node that calls LLMs (generators, judges)
def api_keys(models: list[ModelEntry], path) -> dict[str, str]:
    """Each model's API key from its environment variable (registered for redaction), or a clear error."""
    keys = {}
    for m in models:
        if m.api_key_env:
            value = os.environ.get(m.api_key_env)
            if not value:
                raise KtoBuildError(f"environment variable {m.api_key_env} is not set (model '{m.name}' "
                                    "reads its API key from it)", path, m.line("api_key_env"),
                                    hint=f"export {m.api_key_env}=...")
            keys[m.name] = value
            register(value)
    return keys


def stale_calls(extra: dict | None, noun: str) -> str | None:
    """Why a calling node is stale from its last run's counts: failed calls to retry, or keys not made yet."""
    extra = extra or {}
    failed, missing = extra.get("failed") or 0, extra.get("missing") or 0
    if failed:
        return f"{failed} failed {noun}{'s' if failed != 1 else ''} to retry"
    if missing:
        return f"{missing} {noun}{'s' if missing != 1 else ''} not made yet"
    return None


def calls_per_model(work, models: list[ModelEntry]) -> str:
    """'name N, name M' for plan: the calls each model would make (work items carry ``.model``)."""
    per_model: dict[str, int] = {}
    for w in work:
        per_model[w.model.name] = per_model.get(w.model.name, 0) + 1
    return ", ".join(f"{m.name} {per_model.get(m.name, 0)}" for m in models)
