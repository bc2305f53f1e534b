"""The dataset card's pictures go to the Hub with ``push_to_hub``: the real datasets / huggingface_hub
client code against the local stand-in Hub (tests/exports/fake_hub.py) on 127.0.0.1."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.exports.fake_hub import FakeHub

from .conftest import kto

TOKEN = "hf_docs_pictures_test_token"


@pytest.fixture
def hub():
    with FakeHub() as h:
        yield h


@pytest.mark.parametrize("outputs", ["    outputs: [parquet]\n", "    outputs: []\n"],
                         ids=["files-and-hub", "hub-only"])
def test_card_pictures_are_pushed_beside_the_card(docs_project, tmp_path, hub, outputs):
    root = tmp_path / "haiku"
    shutil.copytree(docs_project, root, ignore=shutil.ignore_patterns("docs", "site*"))
    yml = (root / "project.yml").read_text()
    yml = yml.replace("    format: kto\n    outputs: [parquet]\n",
                      f"    format: kto\n{outputs}    push_to_hub:\n      repo_id: someone/haiku-kto\n"
                      "      token_env: DOCS_HF_TOKEN\n")
    assert "someone/haiku-kto" in yml
    (root / "project.yml").write_text(yml)
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "0",
           "HF_DATASETS_OFFLINE": "0", "DOCS_HF_TOKEN": TOKEN}
    r = kto(root, "run", "--offline", "--select", "haiku_kto", env={**env})
    assert "not pushed" in r.stdout + r.stderr  # offline: nothing pushed yet
    r = kto(root, "run", "--select", "haiku_kto", env=env, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    files = hub.repos["someone/haiku-kto"]["files"]
    card = files["README.md"].decode()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card)
    assert any(p.startswith("label_balance-") for p in links) and any(p.startswith("agreement_") for p in links)
    local = root / "target" / "exports" / "default" / "haiku_kto"  # hub-only: the pictures' staging folder
    for p in links:  # every image link of the pushed card resolves to a file beside README.md on the Hub
        assert p in files, (p, sorted(files))
        assert files[p] == (local / p).read_bytes()
        assert files[p].lstrip().startswith(b"<svg")
    # the pictures' commit came before the card's, so the card never points at a missing file
    order = [c["files"] for c in hub.commits]
    pics_at = next(i for i, f in enumerate(order) if links[0] in f)
    card_at = max(i for i, f in enumerate(order) if "README.md" in f)
    assert pics_at < card_at


def test_pictures_no_longer_shown_are_deleted_on_the_hub(tmp_path, hub):
    hub.repos["someone/pics"] = {"private": False, "files": {
        "README.md": b"card", "label_balance-0123456789abcdef.svg": b"<svg/>", "notes.svg": b"<svg/>"}}
    new = "label_balance-fedcba9876543210.svg"
    (tmp_path / new).write_text("<svg>new</svg>")
    code = ("import sys; from kto_build.docs.cardpics import push_pictures; print(push_pictures(sys.argv[1], "
            f"[('balance', '{new}')], {{'repo_id': 'someone/pics', 'token': '{TOKEN}', 'commit_message': 't'}}))")
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_HUB_OFFLINE": "0"}
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == f"['{new}']", r.stderr
    files = hub.repos["someone/pics"]["files"]
    assert files[new] == b"<svg>new</svg>"
    assert "label_balance-0123456789abcdef.svg" not in files  # an old card picture
    assert "notes.svg" in files and "README.md" in files  # not ours: kept
