"""The one module that talks to Argilla (the argilla 2.8 SDK and its REST API).

Push goes through the SDK (``Dataset.create``, ``dataset.records.log``: a bulk
upsert by record id, so re-sending a record never duplicates it). Pull uses
the REST endpoint ``GET /api/v1/datasets/{id}/records?include=responses``
because the SDK drops response timestamps and cannot filter by them: the
client pages through every record and the caller diffs against its own log.

Every failure a user can cause (no server, wrong key, unknown workspace,
settings the server cannot change in place) becomes one ``KtoBuildError``.
The API key is held in memory only; it never appears in a message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

os.environ.setdefault("TQDM_DISABLE", "1")  # the SDK draws a progress bar per log() call

import argilla as rg
from argilla._exceptions import (
    ArgillaAPIError,
    ArgillaCredentialsError,
    ArgillaError,
    ForbiddenError,
)

from ..errors import KtoBuildError

logging.getLogger("argilla.sdk").setLevel(logging.ERROR)
PAGE_LIMIT = 1000  # the server's maximum page size for record listing


@dataclass
class DatasetSpec:
    workspace: str
    name: str
    question: str
    labels: list[str]
    title: str
    guidelines: str
    min_submitted: int
    metadata: list[str] = field(default_factory=list)
    fields: tuple = ("prompt", "completion")
    metadata_visible: bool = False  # Argilla's visible_for_annotators: raters do not see e.g. model_name


@dataclass
class Where:
    """Where the node is declared, for error lines."""

    path: str
    line: int


def _first_line(exc: BaseException) -> str:
    text = _no_html(str(exc).strip())
    return text.splitlines()[0] if text else type(exc).__name__


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)


def _no_html(text: str) -> str:
    """An HTML page (a proxy's or a web server's error page, a wrong URL) as one line of text."""
    low = text.lower()
    if "<!doctype html" not in low and "<html" not in low:
        return text
    m = _TITLE.search(text)
    title = " ".join(m.group(1).split()) if m else ""
    head = text[: min(i for i in (low.find("<!doctype"), low.find("<html")) if i >= 0)].strip().rstrip(":")
    page = f"an HTML page{f' titled {title!r}' if title else ''} instead of the Argilla API"
    return f"{head}: {page}" if head else page


class ArgillaBackend:
    def __init__(self, api_url: str, api_key: str, where: Where, retries: int = 2, timeout: int = 60):
        self.api_url = api_url.rstrip("/")
        self._api_key = api_key
        self.where = where
        self.retries = retries
        self.timeout = timeout
        self._client: rg.Argilla | None = None
        self._http: httpx.Client | None = None

    # ------------------------------------------------------------ errors
    @contextlib.contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Turn SDK and HTTP failures into one line naming the node."""
        w = self.where
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        except KtoBuildError:
            raise
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadError, httpx.RemoteProtocolError) as exc:
            raise KtoBuildError(f"cannot reach the Argilla server at {self.api_url} while {doing}: "
                                f"{_first_line(exc)}", w.path, w.line,
                                hint="is it running? check the URL in the api_url_env variable") from None
        except httpx.TimeoutException:
            raise KtoBuildError(f"the Argilla server at {self.api_url} timed out while {doing}", w.path,
                                w.line) from None
        except ArgillaCredentialsError:
            raise KtoBuildError(f"the Argilla server at {self.api_url} rejected the API key", w.path, w.line,
                                hint="check the key in the api_key_env variable") from None
        except ForbiddenError as exc:
            raise KtoBuildError(f"Argilla refused {doing}: {_first_line(exc)}", w.path, w.line,
                                hint="the API key's user needs the owner or admin role") from None
        except (ArgillaAPIError, ArgillaError) as exc:
            raise KtoBuildError(f"Argilla failed while {doing}: {_first_line(exc)}", w.path, w.line) from None
        except ValueError as exc:  # a 200 that is not JSON: the URL is not an Argilla API
            raise KtoBuildError(f"the server at {self.api_url} did not answer like Argilla while {doing}: "
                                f"{_first_line(exc)}", w.path, w.line,
                                hint="check the URL in the api_url_env variable") from None

    # ------------------------------------------------------------ clients
    @property
    def client(self) -> rg.Argilla:
        if self._client is None:
            with self.errors("connecting"):
                self._client = rg.Argilla(api_url=self.api_url, api_key=self._api_key, retries=self.retries,
                                          timeout=self.timeout)
        return self._client

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(base_url=self.api_url, headers={"X-Argilla-Api-Key": self._api_key},
                                      timeout=self.timeout)
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.http_client.close()

    def _get(self, url: str, doing: str, **params) -> dict | list:
        with self.errors(doing):
            r = self.http.get(url, params=params or None)
            if r.status_code == 401:
                raise ArgillaCredentialsError("unauthorized")
            if r.status_code >= 400:
                raise KtoBuildError(f"Argilla answered {r.status_code} while {doing}: {_no_html(r.text)[:200]}",
                                    self.where.path, self.where.line)
            return r.json()

    # ------------------------------------------------------------ dataset
    def settings_for(self, spec: DatasetSpec) -> rg.Settings:
        return rg.Settings(
            guidelines=spec.guidelines or None,
            fields=[rg.TextField(name=f, title=f.capitalize()) for f in spec.fields],
            questions=[rg.LabelQuestion(name=spec.question, title=spec.title or spec.question,
                                        labels=list(spec.labels))],
            metadata=[rg.TermsMetadataProperty(name=m, visible_for_annotators=spec.metadata_visible)
                      for m in spec.metadata],
            distribution=rg.TaskDistribution(min_submitted=spec.min_submitted),
        )

    def find_dataset(self, spec: DatasetSpec):
        """The dataset, or None; a missing workspace is an error."""
        w = self.where
        with self.errors(f"looking up workspace '{spec.workspace}'"):
            ws = self.client.workspaces(spec.workspace)
        if ws is None:
            raise KtoBuildError(f"Argilla workspace '{spec.workspace}' does not exist on {self.api_url}", w.path,
                                w.line, hint="create it in Argilla, or fix 'workspace'")
        with self.errors(f"looking up dataset '{spec.workspace}/{spec.name}'"):
            return self.client.datasets(spec.name, workspace=ws)

    def ensure_dataset(self, spec: DatasetSpec) -> tuple[Any, bool]:
        """Create the dataset if missing, check it matches otherwise. Returns (dataset, created)."""
        ds = self.find_dataset(spec)
        if ds is None:
            with self.errors(f"creating dataset '{spec.workspace}/{spec.name}'"):
                ds = rg.Dataset(name=spec.name, workspace=spec.workspace, settings=self.settings_for(spec),
                                client=self.client).create()
            return ds, True
        self._check_settings(ds, spec)
        return ds, False

    def _check_settings(self, ds, spec: DatasetSpec) -> None:
        s = ds.settings
        have_fields = sorted(f.name for f in s.fields)
        have_q = {q.name: q for q in s.questions}
        have_meta = sorted(m.name for m in s.metadata)
        problems = []
        if have_fields != sorted(spec.fields):
            problems.append(f"fields {have_fields} on the server, {sorted(spec.fields)} here")
        q = have_q.get(spec.question)
        if q is None or len(have_q) != 1:
            problems.append(f"questions {sorted(have_q)} on the server, ['{spec.question}'] here")
        else:
            labels = list(q.labels) if isinstance(q.labels, list) else list(q.labels or {})
            if sorted(map(str, labels)) != sorted(spec.labels):
                problems.append(f"labels {labels} on the server, {list(spec.labels)} here")
        if have_meta != sorted(spec.metadata):
            problems.append(f"metadata {have_meta} on the server, {sorted(spec.metadata)} here")
        if problems:
            raise KtoBuildError(
                f"Argilla dataset '{spec.workspace}/{spec.name}' exists with settings that cannot change in place: "
                + "; ".join(problems), self.where.path, self.where.line,
                hint="use a new 'dataset' name, or delete the dataset in Argilla (its answers are kept in your log)")
        changed = False
        if (s.guidelines or "") != (spec.guidelines or ""):
            s.guidelines = spec.guidelines or None
            changed = True
        dist = s.distribution
        if getattr(dist, "min_submitted", spec.min_submitted) != spec.min_submitted:
            s.distribution = rg.TaskDistribution(min_submitted=spec.min_submitted)
            changed = True
        if changed:
            with self.errors(f"updating dataset '{spec.workspace}/{spec.name}' (guidelines, min_submitted)"):
                ds.update()

    # --------------------------------------------------------------- push
    def push(self, ds, spec: DatasetSpec, records: list[dict], batch_size: int,
             on_batch: Callable[[list[dict]], None]) -> int:
        """Log ``records`` (dicts with id, fields and metadata) to dataset ``ds`` in batches;
        ``on_batch`` after each."""
        sent = 0
        for i in range(0, len(records), batch_size):
            batch = records[i: i + batch_size]
            rows = [self._record(spec, r) for r in batch]
            with self.errors(f"pushing records {i + 1}-{i + len(batch)}"):
                ds.records.log(rows, batch_size=min(batch_size, 500))
            on_batch(batch)
            sent += len(batch)
        return sent

    @staticmethod
    def _record(spec: DatasetSpec, r: dict) -> rg.Record:
        """An Argilla record: fields, metadata and, under ``_suggestion``, a judge's verdict (value, score,
        agent) as the question's suggestion. Re-logging a record upserts its suggestion in place."""
        s = r.get("_suggestion")
        suggestions = ([rg.Suggestion(spec.question, s.value, score=s.score, agent=agent_name(s.agent),
                                      type="model")] if s is not None else None)
        return rg.Record(id=r["id"], fields={f: r[f] for f in spec.fields},
                         metadata={m: r[m] for m in spec.metadata if r.get(m) is not None}, suggestions=suggestions)

    def delete_suggestions(self, dataset_id: str, question: str, record_ids: set[str]) -> int:
        """Delete the suggestion on ``question`` of the records with these (external) ids: a verdict that is
        gone. Pages through the dataset's records with their suggestions; one DELETE per record."""
        doing = "withdrawing suggestions"
        qs = self._get(f"/api/v1/datasets/{dataset_id}/questions", doing)
        qid = next((q["id"] for q in qs.get("items", []) if q["name"] == question), None)
        deleted, offset = 0, 0
        while qid is not None:
            data = self._get(f"/api/v1/datasets/{dataset_id}/records", doing, include="suggestions",
                             offset=offset, limit=PAGE_LIMIT)
            items = data.get("items", [])
            for rec in items:
                sids = [x["id"] for x in rec.get("suggestions") or [] if x["question_id"] == qid]
                if sids and str(rec.get("external_id") or rec["id"]) in record_ids:
                    with self.errors(doing):
                        r = self.http.delete(f"/api/v1/records/{rec['id']}/suggestions",
                                             params={"ids": ",".join(sids)})
                    if r.status_code >= 400:
                        raise KtoBuildError(f"Argilla answered {r.status_code} while {doing}: "
                                            f"{_no_html(r.text)[:200]}", self.where.path, self.where.line)
                    deleted += 1
            offset += len(items)
            if not items or offset >= data.get("total", 0):
                break
        return deleted

    # --------------------------------------------------------------- pull
    def users(self) -> dict[str, str]:
        """user id -> username (owners and admins may list users)."""
        data = self._get("/api/v1/users", "listing users")
        items = data.get("items", data) if isinstance(data, dict) else data
        return {str(u["id"]): u["username"] for u in items}

    def responses(self, dataset_id: str, page_size: int = 200, progress=None) -> Iterator[dict]:
        """Every response of every record: one dict per (record, user, question)."""
        page_size = max(1, min(page_size, PAGE_LIMIT))
        try:
            users = self.users()
        except KtoBuildError:
            users = {}
        offset = 0
        while True:
            data = self._get(f"/api/v1/datasets/{dataset_id}/records", "pulling responses",
                             include="responses", offset=offset, limit=page_size)
            items = data.get("items", [])
            for rec in items:
                record_id = rec.get("external_id") or rec["id"]
                for resp in rec.get("responses") or []:
                    uid = str(resp["user_id"])
                    values = resp.get("values") or {}
                    questions = values.keys() or [None]
                    for q in questions:
                        v = (values.get(q) or {}).get("value") if q else None
                        yield {
                            "record_id": str(record_id),
                            "question": q,
                            "annotator_id": uid,
                            "annotator": users.get(uid, uid),
                            "value": None if v is None else str(v),
                            "status": resp.get("status"),
                            "response_created_at": _ts(resp.get("inserted_at")),
                            "response_updated_at": _ts(resp.get("updated_at")),
                        }
            if progress is not None:
                progress.advance(len(items))
            offset += len(items)
            if not items or offset >= data.get("total", 0):
                return


_AGENT_BAD = re.compile(r"[^a-zA-Z0-9\-_:./ ]")


def agent_name(name: str) -> str:
    """A judge model's name as an Argilla suggestion agent (letters, digits, ``-_:./`` and spaces, at most
    200 characters, at least one letter or digit): other characters become ``_``."""
    clean = _AGENT_BAD.sub("_", name)[:200]
    return clean if re.search(r"[a-zA-Z0-9]", clean) else "judge"


def _ts(value: str | None) -> datetime | None:
    if not value:
        return None
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt
