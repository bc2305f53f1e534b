"""The argilla backend against a real argilla-server 2.8 on 127.0.0.1 (see conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid

import duckdb
import httpx
import pytest

from .conftest import KTO, WORKSPACE, free_port, kto, write_records

pytestmark = pytest.mark.slow


def q(root, sql, db="target/prod.duckdb"):
    con = duckdb.connect(str(root / db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def log_rows(root):
    return q(root, "select record_id, annotator, value, status from haiku_ratings "
                   "order by record_id, annotator, pulled_at")


def state(root, name):
    return q(root, f"select data_version, extra from _kto_build.nodes where name = '{name}'")[0]


def unique_dataset():
    return "haiku-" + uuid.uuid4().hex[:8]


def test_push_creates_dataset_and_second_push_sends_nothing(argilla, project_factory):
    ds = unique_dataset()
    root = project_factory(n=12, dataset=ds)
    r = kto(root, "run", "-t", "prod", env=argilla.env())
    assert "pushed 12 records (created the dataset)" in r.stdout
    dsid = argilla.dataset_id(ds)
    records = argilla.records(dsid)
    assert sorted(x["external_id"] for x in records) == [f"g{i:05d}" for i in range(12)]
    assert records[0]["metadata"].keys() == {"model_name", "generator"}
    with argilla.http() as c:
        settings = c.get(f"/api/v1/datasets/{dsid}").json()
        questions = c.get(f"/api/v1/datasets/{dsid}/questions").json()["items"]
    assert settings["guidelines"] == "A vibes only assessment is fine!"
    assert settings["distribution"] == {"strategy": "overlap", "min_submitted": 1}
    assert [(x["name"], x["title"]) for x in questions] == [("label", "Do you like this haiku?")]
    assert [o["value"] for o in questions[0]["settings"]["options"]] == ["Yes", "No"]
    assert q(root, "select count(*) from _kto_build.annotation_records where node = 'haiku_ratings'")[0][0] == 12

    r = kto(root, "run", "-t", "prod", env=argilla.env())
    assert "pushed 0 records" in r.stdout
    assert len(argilla.records(dsid)) == 12

    # a changed record is sent again (an update by id, not a new record); new records are added
    write_records(root / "data" / "to_annotate.jsonl", 14, suffix=" again")
    r = kto(root, "run", "-t", "prod", env=argilla.env())
    assert "pushed 14 records" in r.stdout
    records = argilla.records(dsid)
    assert len(records) == 14
    assert all("again" in x["fields"]["completion"] for x in records)

    # guidelines and min_submitted change in place (same dataset, same records)
    text = (root / "sources.yml").read_text().replace("min_submitted: 1", "min_submitted: 2")
    (root / "sources.yml").write_text(text.replace("A vibes only assessment is fine!", "Trust your ear."))
    r = kto(root, "run", "-t", "prod", env=argilla.env())
    assert "pushed 0 records" in r.stdout
    with argilla.http() as c:
        settings = c.get(f"/api/v1/datasets/{dsid}").json()
    assert settings["guidelines"] == "Trust your ear."
    assert settings["distribution"] == {"strategy": "overlap", "min_submitted": 2}
    assert argilla.dataset_id(ds) == dsid and len(argilla.records(dsid)) == 14


def test_pull_appends_new_and_changed_answers_keeping_old_rows(argilla, project_factory):
    ds = unique_dataset()
    root = project_factory(n=6, dataset=ds, min_submitted=2)
    kto(root, "run", "-t", "prod", env=argilla.env())
    assert log_rows(root) == []
    votes_before = state(root, "votes")[0]

    argilla.answer("ada", ds, "g00000", "Yes")
    argilla.answer("bob", ds, "g00000", "No")
    argilla.answer("ada", ds, "g00001", "No")
    r = kto(root, "run", "-t", "prod", env=argilla.env())
    assert "3 new log rows" in r.stdout
    assert log_rows(root) == [("g00000", "ada", "Yes", "submitted"), ("g00000", "bob", "No", "submitted"),
                              ("g00001", "ada", "No", "submitted")]
    assert state(root, "votes")[0] != votes_before
    full = q(root, "select annotator_id, response_created_at, response_updated_at, pulled_at, backend, question "
                   "from haiku_ratings")
    assert all(r[1] is not None and r[2] is not None and r[3] is not None and r[4] == "argilla"
               and r[5] == "label" for r in full)

    # nothing new: nothing appended, downstream untouched
    version = state(root, "haiku_ratings")[0]
    votes_version = state(root, "votes")[0]
    r = kto(root, "run", "-t", "prod", env=argilla.env())
    assert "0 new log rows" in r.stdout
    assert len(log_rows(root)) == 3
    assert state(root, "haiku_ratings")[0] == version
    assert state(root, "votes")[0] == votes_version
    assert "START model votes" not in r.stdout

    # ada changes her mind, bob discards: both earlier rows stay, the latest view moves
    argilla.answer("ada", ds, "g00000", "No")
    argilla.answer("bob", ds, "g00000", None, status="discarded")
    r = kto(root, "run", "-t", "prod", env=argilla.env())
    assert "2 new log rows" in r.stdout
    rows = log_rows(root)
    assert ("g00000", "ada", "Yes", "submitted") in rows and ("g00000", "ada", "No", "submitted") in rows
    assert ("g00000", "bob", "No", "submitted") in rows and ("g00000", "bob", None, "discarded") in rows
    assert len(rows) == 5
    latest = q(root, "select annotator, value, status from haiku_ratings_latest where record_id = 'g00000' "
                     "order by annotator")
    assert latest == [("ada", "No", "submitted"), ("bob", None, "discarded")]
    assert "START model votes" in r.stdout

    # --full-refresh never touches the log
    kto(root, "run", "-t", "prod", "--full-refresh", env=argilla.env())
    assert len(log_rows(root)) == 5

    # status: pushed, completed (>= 2 submitted), answers per annotator, last pull
    argilla.answer("bob", ds, "g00001", "No")
    kto(root, "run", "-t", "prod", env=argilla.env())
    st = json.loads(kto(root, "status", "-t", "prod", "--json").stdout)[0]
    assert st["pushed"] == 6 and st["records"] == 6
    assert st["completed"] == 1  # g00001: ada and bob submitted; g00000: bob discarded
    assert st["annotators"] == {"ada": {"submitted": 2}, "bob": {"discarded": 1, "submitted": 1}}
    assert st["last_pull_at"]
    text = kto(root, "status", "-t", "prod").stdout
    assert "records pushed:   6 of 6" in text and "ada: 2 submitted" in text


def test_offline_skips_the_pull(argilla, project_factory):
    root = project_factory(n=3, dataset=unique_dataset())
    kto(root, "run", "-t", "prod", env=argilla.env())
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARGILLA_")}
    r = kto(root, "run", "-t", "prod", "--offline", env=env)
    assert "0 built, 3 skipped, 0 failed" in r.stdout
    assert "offline" in kto(root, "plan", "-t", "prod", "--offline", env=env).stdout
    assert "pull answers from Argilla" in kto(root, "plan", "-t", "prod", env=env).stdout


@pytest.mark.parametrize("case", ["wrong_key", "server_down", "missing_env", "missing_workspace", "changed_labels"])
def test_errors_are_one_line_and_keep_the_log(argilla, project_factory, case):
    ds = unique_dataset()
    root = project_factory(n=4, dataset=ds)
    kto(root, "run", "-t", "prod", env=argilla.env())
    argilla.answer("ada", ds, "g00000", "Yes")
    kto(root, "run", "-t", "prod", env=argilla.env())
    before = log_rows(root)
    assert len(before) == 1
    env = argilla.env()
    expect = ""
    if case == "wrong_key":
        env["ARGILLA_API_KEY"] = "not.the.key.123"
        expect = "rejected the API key"
    elif case == "server_down":
        env["ARGILLA_API_URL"] = f"http://127.0.0.1:{free_port()}"
        expect = "cannot reach the Argilla server"
    elif case == "missing_env":
        env.pop("ARGILLA_API_KEY")
        expect = "environment variable ARGILLA_API_KEY is not set"
    elif case == "missing_workspace":
        text = (root / "sources.yml").read_text().replace(f"workspace: {WORKSPACE}", "workspace: nowhere")
        (root / "sources.yml").write_text(text)
        expect = "workspace 'nowhere' does not exist"
    elif case == "changed_labels":
        text = (root / "sources.yml").read_text().replace('labels: ["Yes", "No"]', 'labels: ["👍", "👎"]')
        (root / "sources.yml").write_text(text)
        expect = "cannot change in place: labels ['Yes', 'No'] on the server"
    r = kto(root, "run", "-t", "prod", env=env, check=False)
    assert r.returncode != 0
    assert expect in r.stderr, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    err_lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(err_lines) == 1 and err_lines[0].startswith("error: haiku_ratings: sources.yml:")
    assert argilla.owner_key not in r.stdout + r.stderr
    assert log_rows(root) == before
    if case in ("changed_labels",):
        assert len(argilla.records(argilla.dataset_id(ds))) == 4  # no silent new dataset
        with argilla.http() as c:
            names = [d["name"] for d in c.get("/api/v1/me/datasets").json()["items"]]
        assert names.count(ds) == 1


def _answer_all_on_behalf(argilla, ds, users_values):
    """The owner logs answers for annotators (fast path for many answers: one bulk upsert)."""
    import argilla as rg

    client = rg.Argilla(api_url=argilla.url, api_key=argilla.owner_key)
    dataset = client.datasets(ds, workspace=WORKSPACE)
    ids = {}
    with argilla.http() as c:
        for u in c.get("/api/v1/users").json()["items"]:
            ids[u["username"]] = u["id"]
    rows = []
    for rec in argilla.records(argilla.dataset_id(ds)):
        rows.append(rg.Record(id=rec["external_id"], fields=rec["fields"], metadata=rec["metadata"],
                              responses=[rg.Response("label", value, user_id=ids[user], status="submitted")
                                         for user, value in users_values]))
    dataset.records.log(rows)
    return len(rows)


def _kill_when(root, env, marker: str, delay: float) -> subprocess.CompletedProcess:
    proc = subprocess.Popen([KTO, "--project-dir", str(root), "run", "-t", "prod"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if marker in line or not line:
            break
    assert any(marker in s for s in seen), "".join(seen)
    time.sleep(delay)
    assert proc.poll() is None, "the run finished before it could be killed: " + "".join(seen)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    return proc


def _kill_during_push(root, env) -> None:
    """Start a run and kill -9 it as soon as the push log holds a committed batch."""
    proc = subprocess.Popen([KTO, "--project-dir", str(root), "run", "-t", "prod"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                con = duckdb.connect(str(root / "target/prod.duckdb"), read_only=True)
            except duckdb.Error:
                time.sleep(0.02)  # the run has the file open for a batch
                continue
            try:
                n = con.execute("select count(*) from _kto_build.annotation_records").fetchone()[0]
            except duckdb.Error:
                n = 0
            finally:
                con.close()
            if n > 0:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def test_kill_9_during_push_and_pull_loses_nothing_and_duplicates_nothing(argilla, project_factory):
    ds = unique_dataset()
    n = 300
    root = project_factory(n=n, dataset=ds, argilla_extra="\n      batch_size: 10\n      page_size: 5")
    env = argilla.env()
    # 1. killed during the push (after some batches committed): rerun pushes the rest, each record once
    _kill_during_push(root, env)
    done = q(root, "select count(*) from _kto_build.annotation_records")[0][0]
    assert 0 < done < n
    kto(root, "run", "-t", "prod", env=env)
    dsid = argilla.dataset_id(ds)
    assert len(argilla.records(dsid)) == n
    assert q(root, "select count(*), count(distinct record_id) from _kto_build.annotation_records")[0] == (n, n)

    # 2. answers from two people; a first pull takes part of them... then killed mid-pull
    argilla.answer("ada", ds, "g00000", "Yes")
    kto(root, "run", "-t", "prod", env=env)
    before = log_rows(root)
    assert before == [("g00000", "ada", "Yes", "submitted")]
    _answer_all_on_behalf(argilla, ds, [("ada", "Yes"), ("bob", "No")])
    _kill_when(root, env, "pulling answers", 0.3)
    assert log_rows(root) == before  # the pull commits all or nothing
    r = kto(root, "run", "-t", "prod", env=env)
    assert f"{2 * n - 1} new log rows" in r.stdout
    rows = q(root, "select count(*), count(distinct (record_id, annotator_id, question)) from haiku_ratings")[0]
    assert rows == (2 * n, 2 * n)
    r = kto(root, "run", "-t", "prod", env=env)
    assert "0 new log rows" in r.stdout


def test_plan_and_ls_do_not_import_argilla(argilla, project_factory):
    root = project_factory(n=2, dataset=unique_dataset())
    code = ("import sys; from kto_build.project import Project; p = Project.load(sys.argv[1], target='prod'); "
            "p.plan(); p.ls(); assert 'argilla' not in sys.modules and 'httpx' not in sys.modules, "
            "[m for m in sys.modules if m.startswith(('argilla', 'httpx'))]; print('ok')")
    r = subprocess.run([os.path.join(os.path.dirname(KTO), "python"), "-c", code, str(root)], capture_output=True,
                       text=True)
    assert r.stdout.strip() == "ok", r.stderr


def test_annotators_cannot_push(argilla, project_factory):
    root = project_factory(n=2, dataset=unique_dataset())
    env = argilla.env(ARGILLA_API_KEY=argilla.annotators["ada"])
    r = kto(root, "run", "-t", "prod", env=env, check=False)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert "error: haiku_ratings: sources.yml:" in r.stderr
    assert "Argilla refused" in r.stderr and "owner or admin role" in r.stderr, r.stderr
    assert httpx.get(f"{argilla.url}/api/v1/status").status_code == 200
