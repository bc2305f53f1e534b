"""Metadata (e.g. model_name) is hidden from Argilla annotators by default (issue 8, item 6):
the dataset's metadata properties have visible_for_annotators = false unless the project
sets metadata_visible: true. Against a real argilla-server 2.8 (see conftest.py)."""

from __future__ import annotations

import uuid

import pytest

from .conftest import kto

pytestmark = pytest.mark.slow


def visibility(argilla, dataset: str, key: str | None = None) -> list[tuple[str, bool]]:
    with argilla.http(key) as c:
        r = c.get(f"/api/v1/me/datasets/{argilla.dataset_id(dataset)}/metadata-properties")
    assert r.status_code == 200, r.text
    return sorted((m["name"], m["visible_for_annotators"]) for m in r.json()["items"])


@pytest.mark.parametrize(("extra", "visible"), [("", False), ("    metadata_visible: true\n", True)])
def test_metadata_visibility_for_annotators(argilla, project_factory, extra, visible):
    ds = "haiku-" + uuid.uuid4().hex[:8]
    root = project_factory(n=3, dataset=ds, extra=extra)
    r = kto(root, "run", "-t", "prod", env=argilla.env())
    assert "pushed 3 records (created the dataset)" in r.stdout
    assert visibility(argilla, ds) == [("generator", visible), ("model_name", visible)]
    # what an annotator's client is given: nothing, unless the project asks
    assert visibility(argilla, ds, argilla.annotators["ada"]) == ([("generator", True), ("model_name", True)]
                                                                  if visible else [])
    # an annotator's view of the records: the metadata is there for owners either way
    assert {rec["metadata"]["model_name"] for rec in argilla.records(argilla.dataset_id(ds))} == {"qwen", "gemma"}
