"""Real services for the annotation tests, started once per session on 127.0.0.1 and stopped after.

- redis-server (Debian's) on a free port, no persistence;
- argilla-server 2.8.0 from its own venv (.cache/argilla-server-venv, built by
  scripts/install-test-services.sh if missing) with SQLite and the in-process
  search engine of scripts/argilla_server/; an owner and two annotators (ada,
  bob) created with the server's own CLI.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts" / "argilla_server"))
from services import free_port, start_argilla, start_redis, stop, wait_for  # noqa: E402,F401 - re-exported to tests

KTO = str(Path(sys.executable).with_name("kto-build"))
OWNER_KEY = "owner.key." + uuid.uuid4().hex[:12]
WORKSPACE = "haiku"
ANNOTATORS = {"ada": "ada.key." + uuid.uuid4().hex[:12], "bob": "bob.key." + uuid.uuid4().hex[:12]}


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    proc, url = start_redis(tmp_path_factory.mktemp("redis") / "redis.log")
    try:
        yield url
    finally:
        stop(proc)


@dataclass
class ArgillaServer:
    url: str
    owner_key: str
    annotators: dict
    home: Path

    def env(self, **extra) -> dict:
        env = {**os.environ, "ARGILLA_API_URL": self.url, "ARGILLA_API_KEY": self.owner_key, **extra}
        env.pop("KTO_BUILD_TEST_NOTHING", None)
        return env

    def http(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-Argilla-Api-Key": key or self.owner_key}, timeout=30)

    def dataset_id(self, name: str, workspace: str = WORKSPACE) -> str | None:
        with self.http() as c:
            for d in c.get("/api/v1/me/datasets").json()["items"]:
                if d["name"] == name:
                    return d["id"]
        return None

    def records(self, dataset_id: str) -> list[dict]:
        out, offset = [], 0
        with self.http() as c:
            while True:
                page = c.get(f"/api/v1/datasets/{dataset_id}/records",
                             params={"include": "responses", "offset": offset, "limit": 1000}).json()
                out += page["items"]
                offset += len(page["items"])
                if not page["items"] or offset >= page["total"]:
                    return out

    def answer(self, user: str, dataset: str, record_external_id: str, value: str | None, status="submitted",
               question="label") -> dict:
        """``user`` answers one record through the REST API as themselves (create, or update their answer)."""
        ds = self.dataset_id(dataset)
        rec = next(r for r in self.records(ds) if r["external_id"] == record_external_id)
        key = self.annotators[user]
        values = {question: {"value": value}} if value is not None else None
        body = {"values": values, "status": status}
        with self.http(key) as c:
            me = c.get("/api/v1/me").json()["id"]
            mine = [r for r in rec["responses"] if r["user_id"] == me]
            if mine:
                r = c.put(f"/api/v1/responses/{mine[0]['id']}", json=body)
            else:
                r = c.post(f"/api/v1/records/{rec['id']}/responses", json=body)
            assert r.status_code in (200, 201), r.text
            return r.json()


@pytest.fixture(scope="session")
def argilla(redis_url, tmp_path_factory):
    home = tmp_path_factory.mktemp("argilla")
    proc, url = start_argilla(home, redis_url, OWNER_KEY, ANNOTATORS, WORKSPACE)
    try:
        yield ArgillaServer(url, OWNER_KEY, ANNOTATORS, home)
    finally:
        stop(proc)


# --------------------------------------------------------------- projects
def write_records(path: Path, n: int, start: int = 0, suffix: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(start, start + n):
            fh.write(json.dumps({"id": f"g{i:05d}", "prompt": f"Write a haiku about the number {i}",
                                 "completion": f"old pond {i}\nfrog jumps in{suffix}\nsplash",
                                 "model_name": "gemma" if i % 2 else "qwen", "generator": "haiku_gen"}) + "\n")


def make_project(root: Path, n: int = 10, backend: str = "local", dataset: str = "haiku-kto", extra: str = "",
                 min_submitted: int = 1, argilla_extra: str = "") -> Path:
    """A project whose records model ``to_annotate`` is a plain jsonl source, plus one SQL model downstream."""
    root.mkdir(parents=True, exist_ok=True)
    write_records(root / "data" / "to_annotate.jsonl", n)
    (root / "project.yml").write_text("name: ann_test\ntarget: dev\ntargets:\n  dev: {}\n"
                                      "  prod:\n    database: target/prod.duckdb\n", encoding="utf-8")
    (root / "sources.yml").write_text(f"""prompts:
  to_annotate:
    path: data/to_annotate.jsonl
annotations:
  haiku_ratings:
    records: to_annotate
    backend: {backend}
    question: {{name: label, title: "Do you like this haiku?", labels: ["Yes", "No"]}}
    guidelines: A vibes only assessment is fine!
    min_submitted: {min_submitted}
    argilla:
      api_url_env: ARGILLA_API_URL
      api_key_env: ARGILLA_API_KEY
      workspace: {WORKSPACE}
      dataset: {dataset}{argilla_extra}
    for_target:
      prod: {{backend: argilla}}
{extra}""", encoding="utf-8")
    (root / "models").mkdir(exist_ok=True)
    (root / "models" / "votes.sql").write_text(
        "select record_id, count(*) filter (where value = 'Yes') as up, count(*) as n\n"
        "from haiku_ratings where status = 'submitted' group by record_id\n", encoding="utf-8")
    return root


def kto(root: Path, *args, env=None, check=True, timeout=180) -> subprocess.CompletedProcess:
    r = subprocess.run([KTO, "--project-dir", str(root), *args], capture_output=True, text=True, env=env,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"kto-build {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


@pytest.fixture
def project_factory(tmp_path):
    def make(name="proj", **kw):
        return make_project(tmp_path / name, **kw)

    return make


@contextlib.contextmanager
def page_server(cmd: list[str]):
    """The local annotation page served by ``cmd`` (a process that prints its http://127.0.0.1:PORT/ first);
    yields that URL and stops the process."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    m = re.search(r"http://127\.0\.0\.1:\d+/", line)
    assert m, line + (proc.stdout.read() if proc.poll() is not None else "")
    try:
        yield m.group(0)
    finally:
        stop(proc)
        proc.stdout.close()
