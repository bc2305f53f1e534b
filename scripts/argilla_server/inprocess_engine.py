"""An in-process search engine for argilla-server 2.8, for tests and benchmarks.

argilla-server needs Elasticsearch or OpenSearch; neither can be installed on
the test machines. The server picks its engine by name from
``SearchEngine.registered_classes``, so this module registers ``inprocess``
(select it with ``ARGILLA_SEARCH_ENGINE=inprocess``). It keeps one small
document per record (status, metadata, responses) in module-level dicts,
because ``SearchEngine.get_by_name`` makes a new instance per use. At the
first use after start-up it rebuilds those documents from the database, so a
restarted server still answers searches.

It implements what the Argilla UI and the annotator endpoints use: record and
per-user response status filters (including ``pending``), terms/range filters
on metadata and response values, a substring text query, and progress counts.
Loaded by scripts/argilla_server/launch.py inside the server's own venv.
"""

from __future__ import annotations

import asyncio
from typing import Any

from argilla_server.search_engine.base import (
    AndFilter,
    MetadataFilterScope,
    RangeFilter,
    RecordFilterScope,
    ResponseFilterScope,
    SearchEngine,
    SearchResponseItem,
    SearchResponses,
    SuggestionFilterScope,
    TermsFilter,
    TermsMetrics,
)

# dataset id -> record id -> document
DOCS: dict[str, dict[str, dict[str, Any]]] = {}
_LOADED = False
_LOAD_LOCK = asyncio.Lock()


def _doc_for(record) -> dict[str, Any]:
    doc = {
        "id": str(record.id),
        "external_id": record.external_id,
        "status": str(getattr(record.status, "value", record.status)),
        "inserted_at": record.inserted_at,
        "fields": dict(record.fields or {}),
        "metadata": dict(record.metadata_ or {}),
        "responses": {},
    }
    try:
        for r in record.responses or []:
            doc["responses"][str(r.user_id)] = _response_doc(r)
    except Exception:  # noqa: S110 - relationship not loaded: responses arrive later one by one
        pass
    return doc


def _response_doc(response) -> dict[str, Any]:
    values = {q: (v or {}).get("value") for q, v in (response.values or {}).items()}
    return {"status": str(getattr(response.status, "value", response.status)), "values": values}


async def _load_from_database() -> None:
    global _LOADED
    async with _LOAD_LOCK:
        if _LOADED:
            return
        from argilla_server.database import AsyncSessionLocal
        from argilla_server.models import Record
        from sqlalchemy import select
        from sqlalchemy.orm import selectinload

        async with AsyncSessionLocal() as db:
            result = await db.execute(select(Record).options(selectinload(Record.responses)))
            for record in result.scalars():
                DOCS.setdefault(str(record.dataset_id), {})[str(record.id)] = _doc_for(record)
        _LOADED = True


def _matches(doc: dict, flt) -> bool:
    if flt is None:
        return True
    if isinstance(flt, AndFilter):
        return all(_matches(doc, f) for f in flt.filters)
    scope = flt.scope
    if isinstance(scope, RecordFilterScope):
        values = [doc.get(scope.property)]
    elif isinstance(scope, MetadataFilterScope):
        values = [doc["metadata"].get(scope.metadata_property)]
    elif isinstance(scope, ResponseFilterScope):
        responses = doc["responses"]
        if scope.user is not None:
            responses = {k: v for k, v in responses.items() if k == str(scope.user.id)}
        if scope.question:
            values = [r["values"].get(scope.question) for r in responses.values()]
        else:
            values = [r["status"] for r in responses.values()]
            if isinstance(flt, TermsFilter) and "pending" in [str(getattr(v, "value", v)) for v in flt.values]:
                if not responses:
                    return True
    elif isinstance(scope, SuggestionFilterScope):
        return False
    else:
        return False
    values = [v for v in values if v is not None]
    if isinstance(flt, TermsFilter):
        wanted = {str(getattr(v, "value", v)) for v in flt.values}
        return any((str(x) in wanted) for v in values for x in (v if isinstance(v, list) else [v]))
    if isinstance(flt, RangeFilter):
        return any((flt.ge is None or v >= flt.ge) and (flt.le is None or v <= flt.le) for v in values)
    return False


@SearchEngine.register(engine_name="inprocess")
class InProcessSearchEngine(SearchEngine):
    @classmethod
    async def new_instance(cls) -> InProcessSearchEngine:
        await _load_from_database()
        return cls()

    async def close(self):
        return None

    async def ping(self) -> bool:
        return True

    async def info(self) -> dict:
        return {"name": "inprocess", "version": "1"}

    async def create_index(self, dataset):
        DOCS.setdefault(str(dataset.id), {})

    async def delete_index(self, dataset):
        DOCS.pop(str(dataset.id), None)

    async def configure_metadata_property(self, dataset, metadata_property):
        return None

    async def index_records(self, dataset, records):
        docs = DOCS.setdefault(str(dataset.id), {})
        for record in records:
            docs[str(record.id)] = _doc_for(record)

    async def partial_record_update(self, record, **update):
        doc = DOCS.get(str(record.dataset_id), {}).get(str(record.id))
        if doc is not None:
            for key, value in update.items():
                doc[key] = str(getattr(value, "value", value)) if key == "status" else value

    async def delete_records(self, dataset, records):
        docs = DOCS.get(str(dataset.id), {})
        for record in records:
            docs.pop(str(record.id), None)

    def _doc_of_response(self, response):
        for docs in DOCS.values():
            doc = docs.get(str(response.record_id))
            if doc is not None:
                return doc
        return None

    async def update_record_response(self, response):
        doc = self._doc_of_response(response)
        if doc is not None:
            doc["responses"][str(response.user_id)] = _response_doc(response)

    async def delete_record_response(self, response):
        doc = self._doc_of_response(response)
        if doc is not None:
            doc["responses"].pop(str(response.user_id), None)

    async def update_record_suggestion(self, suggestion):
        return None

    async def delete_record_suggestion(self, suggestion):
        return None

    async def get_dataset_progress(self, dataset) -> dict:
        docs = DOCS.get(str(dataset.id), {}).values()
        out: dict[str, int] = {"total": 0}
        for d in docs:
            out["total"] += 1
            out[d["status"]] = out.get(d["status"], 0) + 1
        return out

    async def get_dataset_user_progress(self, dataset, user) -> dict:
        out: dict[str, int] = {"total": 0}
        for d in DOCS.get(str(dataset.id), {}).values():
            r = d["responses"].get(str(user.id))
            if r is not None:
                out["total"] += 1
                out[r["status"]] = out.get(r["status"], 0) + 1
        return out

    async def search(self, dataset, query=None, filter=None, sort=None, offset=0, limit=100,  # noqa: A002
                     user_id=None) -> SearchResponses:
        text = getattr(query, "q", query)
        field = getattr(query, "field", None)
        hits = []
        for doc in DOCS.get(str(dataset.id), {}).values():
            if not _matches(doc, filter):
                continue
            if text and text != "*":
                haystack = [doc["fields"].get(field)] if field else list(doc["fields"].values())
                if not any(text.lower() in str(v).lower() for v in haystack if v is not None):
                    continue
            hits.append(doc)
        hits.sort(key=lambda d: (d["inserted_at"] is None, d["inserted_at"] or 0, d["id"]))
        page = hits[offset: offset + limit]
        return SearchResponses(items=[SearchResponseItem(record_id=d["id"], score=None) for d in page],
                               total=len(hits))

    async def compute_metrics_for(self, metadata_property):
        return TermsMetrics(total=0, values=[])

    async def similarity_search(self, dataset, vector_settings, value=None, record=None, query=None,
                                filter=None,  # noqa: A002
                                max_results=100, order=None, threshold=None) -> SearchResponses:
        return SearchResponses(items=[], total=0)
