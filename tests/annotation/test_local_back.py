"""The local annotation page's API: metadata hidden from raters unless asked, skipped
records come back at the end, back/undo to change an answer, --host (issue 8)."""

from __future__ import annotations

import re
import subprocess

import duckdb
import httpx
import pytest

from .conftest import KTO, kto, stop


@pytest.fixture
def serve():
    procs = []

    def start(root, *args):
        kto(root, "run")
        proc = subprocess.Popen([KTO, "--project-dir", str(root), "annotate", "--port", "0", "--no-browser", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        line = proc.stdout.readline()
        m = re.search(r"http://[\d.]+:\d+/", line)
        assert m, line + (proc.stdout.read() if proc.poll() is not None else "")
        return m.group(0)

    yield start
    for p in procs:
        stop(p)
        p.stdout.close()


def nxt(url, who="Ada"):
    return httpx.get(url + "api/next", params={"annotator": who}).json()


def answer(url, record_id, value, status="submitted", who="Ada"):
    r = httpx.post(url + "api/answer", json={"record_id": record_id, "annotator": who, "value": value,
                                             "status": status})
    assert r.status_code == 200, r.text
    return r.json()


def test_metadata_hidden_by_default_and_shown_when_asked(project_factory, serve):
    url = serve(project_factory(name="hidden", n=2))
    assert nxt(url)["record"]["metadata"] == {}  # no model_name for raters
    url = serve(project_factory(name="shown", n=2, extra="    metadata_visible: true\n"))
    assert nxt(url)["record"]["metadata"] == {"model_name": "qwen", "generator": "haiku_gen"}


def test_skips_come_back_at_the_end_and_back_changes_an_answer(project_factory, serve):
    root = project_factory(n=4)
    url = serve(root, "--host", "127.0.0.2")
    assert url.startswith("http://127.0.0.2:")
    assert nxt(url)["record"]["id"] == "g00000"
    answer(url, "g00000", "Yes")
    out = answer(url, "g00001", None, "discarded")  # skip
    assert out["record"]["id"] == "g00002" and out["progress"]["skipped"] == 1
    answer(url, "g00002", "No")
    out = answer(url, "g00003", "Yes")
    # nothing else left: the skipped record comes back, marked as skipped before
    assert out["record"]["id"] == "g00001" and out["record"]["mine"] == {"value": None, "status": "discarded"}
    assert out["progress"]["pending_for_me"] == 0 and out["progress"]["skipped"] == 1

    # back: the newest answer first, then the one before it
    prev = httpx.get(url + "api/previous", params={"annotator": "ada"}).json()["record"]
    assert prev["id"] == "g00003" and prev["mine"] == {"value": "Yes", "status": "submitted"}
    prev = httpx.get(url + "api/previous", params={"annotator": "ada", "before": "g00003"}).json()["record"]
    assert prev["id"] == "g00002" and prev["mine"]["value"] == "No"
    out = answer(url, "g00002", "Yes")  # changed: a new log row, the newest counts
    assert out["record"]["id"] == "g00001"
    out = answer(url, "g00001", "No")
    assert out["record"] is None and out["progress"]["skipped"] == 0 and out["progress"]["completed"] == 4

    con = duckdb.connect(str(root / "target/kto_build.duckdb"), read_only=True)
    try:
        rows = con.execute("select record_id, value, status from haiku_ratings order by pulled_at").fetchall()
        latest = con.execute("select record_id, value from haiku_ratings_latest order by 1").fetchall()
    finally:
        con.close()
    assert rows == [("g00000", "Yes", "submitted"), ("g00001", None, "discarded"), ("g00002", "No", "submitted"),
                    ("g00003", "Yes", "submitted"), ("g00002", "Yes", "submitted"), ("g00001", "No", "submitted")]
    assert latest == [("g00000", "Yes"), ("g00001", "No"), ("g00002", "Yes"), ("g00003", "Yes")]
