"""push_to_hub, as far as this machine allows without the internet: the real
``datasets`` / ``huggingface_hub`` client code runs against a stand-in Hub on
127.0.0.1 (tests/exports/fake_hub.py) via HF_ENDPOINT. Uploads go through the
Hub's LFS protocol (HF_HUB_DISABLE_XET=1: the Xet storage protocol is not
emulated here)."""

from __future__ import annotations

import io

import datasets
import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import PROJECT_YML, cli, make_project
from fake_hub import FakeHub

TOKEN = "hf_kto_build_test_secret_4242"
HUB_YML = PROJECT_YML + """    push_to_hub:
      repo_id: someone/haiku-dpo
      private: true
      config_name: dpo
      token_env: MY_HF_TOKEN
"""


@pytest.fixture
def hub():
    with FakeHub() as h:
        yield h


def env_for(hub, token=TOKEN):
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0"}
    if token:
        env["MY_HF_TOKEN"] = token
    return env


def test_push_to_hub_round_trip(tmp_path, hub):
    root = make_project(tmp_path / "p", project_yml=HUB_YML)
    res = cli(root, "run", env=env_for(hub))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "hub someone/haiku-dpo" in res.stdout
    repo = hub.repos["someone/haiku-dpo"]
    # the create call asked for a private dataset repo
    create = next(r for r in hub.requests if r["path"] == "/api/repos/create")
    assert b'"private"' in create["body"] and b'"type":"dataset"' in create["body"].replace(b" ", b"")
    # every API call carried the token from $MY_HF_TOKEN
    api = [r for r in hub.requests if r["path"].startswith(("/api/datasets", "/api/repos"))]
    assert api and all(r["authorization"] == f"Bearer {TOKEN}" for r in api)
    # the data: config 'dpo' -> dpo/train-*.parquet, exact TRL columns, rows as in DuckDB
    shards = [p for p in repo["files"] if p.startswith("dpo/train-")]
    assert len(shards) == 1
    table = pq.read_table(io.BytesIO(repo["files"][shards[0]]))
    ds = datasets.Dataset(datasets.table.InMemoryTable(table))
    assert dict(ds.features) == {c: datasets.Value("string") for c in ("prompt", "chosen", "rejected")}
    con = duckdb.connect(str(root / "target/kto_build.duckdb"), read_only=True)
    expected = con.execute("select prompt, chosen, rejected from dpo").fetchall()
    con.close()
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in ds] == expected
    # the card: our body, with the configs datasets wrote for this config
    card = repo["files"]["README.md"].decode()
    assert "config_name: dpo" in card and "path: dpo/train-*" in card
    assert "license: apache-2.0" in card and "# haiku_dpo" in card
    assert "dataset_info:" in card
    # a second run: nothing to do, nothing pushed
    before = len(hub.commits)
    res = cli(root, "run", env=env_for(hub))
    assert res.returncode == 0
    assert len(hub.commits) == before


def test_token_never_stored(tmp_path, hub):
    root = make_project(tmp_path / "p", project_yml=HUB_YML)
    res = cli(root, "run", env=env_for(hub))
    assert res.returncode == 0, res.stderr
    assert TOKEN not in res.stdout + res.stderr
    for f in (root / "target").rglob("*"):
        if f.is_file():
            assert TOKEN.encode() not in f.read_bytes(), f
    assert TOKEN.encode() not in hub.repos["someone/haiku-dpo"]["files"]["README.md"]


def test_missing_token(tmp_path, hub):
    root = make_project(tmp_path / "p", project_yml=HUB_YML)
    res = cli(root, "run", env=env_for(hub, token=None))
    assert res.returncode == 1
    assert ("error: haiku_dpo: project.yml:22: export 'haiku_dpo' pushes to someone/haiku-dpo but the environment "
            "variable MY_HF_TOKEN is not set (export MY_HF_TOKEN=<a write token>, or run with --offline to skip "
            "the push)") in res.stderr
    assert hub.repos == {}
    assert not (root / "target/exports/default/haiku_dpo").exists()  # checked before any work


def test_offline_skips_the_push_then_pushes(tmp_path, hub):
    root = make_project(tmp_path / "p", project_yml=HUB_YML)
    res = cli(root, "run", "--offline", env=env_for(hub))
    assert res.returncode == 0, res.stderr
    assert "offline: not pushed to someone/haiku-dpo (the next online run pushes)" in res.stdout
    assert (root / "target/exports/default/haiku_dpo/train.parquet").exists()
    assert hub.requests == []
    res = cli(root, "plan", env=env_for(hub))
    assert "haiku_dpo" in res.stdout and "not pushed to someone/haiku-dpo yet" in res.stdout
    res = cli(root, "run", env=env_for(hub))
    assert res.returncode == 0, res.stderr
    assert "someone/haiku-dpo" in hub.repos


def test_hub_error_is_one_line_without_token(tmp_path, hub):
    root = make_project(tmp_path / "p", project_yml=HUB_YML.replace("someone/haiku-dpo", "someone/bad name"))
    res = cli(root, "run", env=env_for(hub))
    assert res.returncode == 1
    line = next(x for x in res.stderr.splitlines() if x.startswith("error: haiku_dpo:"))
    assert "push to someone/bad name failed" in line
    assert TOKEN not in res.stderr and "Traceback" not in res.stderr


def test_token_env_must_be_a_name(tmp_path):
    root = make_project(tmp_path / "p", project_yml=HUB_YML.replace("MY_HF_TOKEN", "hf_abcdef"))
    res = cli(root, "plan")
    assert res.returncode == 2
    assert res.stderr.strip() == ("error: project.yml:25: 'token_env' names the environment variable that holds the "
                                  "token, not the token itself (e.g. token_env: HF_TOKEN, then export HF_TOKEN=...)")
