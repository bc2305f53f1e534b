"""A real 2-node Ray cluster on 127.0.0.2 (one per test module) and the OpenAI-compatible test server."""

from __future__ import annotations

import warnings

import pytest

pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e .[ray])")

from scripts.ray_cluster import LoopbackCluster
from tests.generation.llm_server import LLMServer


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/ray/" in str(item.fspath):
            item.add_marker(pytest.mark.ray)


@pytest.fixture(scope="module")
def module_cluster(tmp_path_factory):
    with LoopbackCluster(tmp_path_factory.mktemp("ray")) as c:
        yield c


@pytest.fixture
def cluster(module_cluster):
    """The module's cluster with both nodes up: a node that left after an earlier test is started again (and
    said so), so one test's killed or lost node never turns the next test into a hang."""
    restarted = module_cluster.ensure_up()
    if restarted:
        warnings.warn(f"ray node(s) {restarted} had exited and were started again; see {module_cluster.log_dir}",
                      stacklevel=1)
    return module_cluster


@pytest.fixture(scope="module")
def server():
    with LLMServer() as srv:
        yield srv


@pytest.fixture
def llm_server(server):
    server.configure(latency=0.0)
    server.reset()
    return server
