"""The push log is keyed by the Argilla server's dataset id (issue 9, item 5), on a real argilla-server.

A dataset deleted on the server (or a new one after changing ``dataset:``) gets every record pushed again;
answers already in the log are kept and not imported again as new rows."""

from __future__ import annotations

import uuid

import pytest

from tests.annotation.conftest import argilla, kto, project_factory, redis_url  # noqa: F401 - fixtures
from tests.helpers import query

pytestmark = pytest.mark.slow


def _count(root, sql):
    return query(root, sql, "target/prod.duckdb")[0][0]


def test_deleted_or_renamed_dataset_gets_every_record_again(argilla, project_factory):  # noqa: F811
    ds = "haiku-" + uuid.uuid4().hex[:8]
    root = project_factory(n=8, dataset=ds)
    r = kto(root, "run", "-t", "prod", env=argilla.env())
    assert "pushed 8 records (created the dataset)" in r.stdout
    argilla.answer("ada", ds, "g00001", "Yes")
    kto(root, "run", "-t", "prod", env=argilla.env())
    assert _count(root, "select count(*) from haiku_ratings") == 1

    # delete the dataset on the server: the next run creates it again and pushes all 8 records
    with argilla.http() as c:
        assert c.delete(f"/api/v1/datasets/{argilla.dataset_id(ds)}").status_code == 200
    r = kto(root, "run", "-t", "prod", env=argilla.env())
    assert "pushed 8 records (created the dataset); the log named another dataset for 8 of them" in r.stdout
    assert len(argilla.records(argilla.dataset_id(ds))) == 8
    status = kto(root, "status", "-t", "prod", env=argilla.env()).stdout
    assert "records pushed:   8 of 8" in status
    # the answer pulled before the deletion is kept, and not imported again
    assert _count(root, "select count(*) from haiku_ratings") == 1

    # a new dataset name: pushed again in full
    text = (root / "sources.yml").read_text()
    (root / "sources.yml").write_text(text.replace(f"dataset: {ds}", f"dataset: {ds}-v2"))
    r = kto(root, "run", "-t", "prod", env=argilla.env())
    assert "pushed 8 records (created the dataset)" in r.stdout
    assert len(argilla.records(argilla.dataset_id(f"{ds}-v2"))) == 8
    assert _count(root, "select count(*) from haiku_ratings") == 1
    # and the run after that pushes nothing; status counts the records of the dataset in use
    r = kto(root, "run", "-t", "prod", env=argilla.env())
    assert "pushed 0 records" in r.stdout
    assert "records pushed:   8 of 8" in kto(root, "status", "-t", "prod", env=argilla.env()).stdout
    assert _count(root, "select count(*) from _kto_build.annotation_records") == 8
