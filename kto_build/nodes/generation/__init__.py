"""Generators and the LLM-call machinery other node kinds reuse.

- ``settings``: model entries (``MODEL_SPEC``, ``ModelEntry``, ``model_entries``), known LLMs, transport vs
  content params.
- ``cache``: the ``_kto_build.generations`` table (``GenerationRow`` is its one definition), keys, prompts.
- ``calls``: ``CallRequest`` / ``CallResult``, the ``Executor`` and ``RowSink`` protocols, ``CallDriver``
  (batching, back-pressure, progress, failure accounting); ``local``: ``LocalExecutor``.
- ``node``: ``GenerationNode``.

Only the import-light modules are re-exported here; ``calls`` and ``local`` import asyncio and are imported
where calls are made.
"""

from .cache import CACHE, CACHE_DDL, COLUMNS, NAMES, GenerationRow, Work, ensure_cache, generation_id
from .node import GenerationNode
from .settings import (
    DEFAULT_TIMEOUT,
    KNOWN_LLMS,
    LOCAL_LLMS,
    MODEL_PARAMS,
    MODEL_SPEC,
    TRANSPORT_PARAMS,
    ModelEntry,
    model_entries,
)

__all__ = ["CACHE", "CACHE_DDL", "COLUMNS", "DEFAULT_TIMEOUT", "KNOWN_LLMS", "LOCAL_LLMS", "MODEL_PARAMS",
           "MODEL_SPEC", "NAMES", "TRANSPORT_PARAMS", "GenerationNode", "GenerationRow", "ModelEntry", "Work",
           "ensure_cache", "generation_id", "model_entries"]
