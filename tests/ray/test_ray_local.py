"""`address: local`: a Ray instance started for one run (no cluster fixture), and the lines for a cluster that
cannot be reached. Each case runs in its own process: ray.init() changes process-wide state (auth mode, logging).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.ray_cluster import outside_loopback, sockets

REPO = Path(__file__).resolve().parents[2]

LOCAL_RUN = r"""
import json, os, sys
from pathlib import Path
from kto_build.adapters.ray_calls import RayExecutor
from scripts.ray_cluster import outside_loopback, sockets

url, temp_dir = sys.argv[1], sys.argv[2]
spec = {"llm": "OpenAILLM", "params": {"model": "test-model", "base_url": url},
        "generation": {"max_new_tokens": 16}, "retries": 0}
reqs = [{"key": f"k{i}", "input": [{"role": "user", "content": f"local prompt {i}"}]} for i in range(12)]

def children(pid):
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                out.add(int(d.name))
    return out

ex = RayExecutor(address="local", actors=2, num_cpus=1, temp_dir=temp_dir, shard_size=4)
ex.connect()
infos = ex.start(spec, "k")
results = list(ex.run(reqs))
procs = children(os.getpid())
bad, wildcard = outside_loopback(sockets(procs | {os.getpid()} | {int(i["worker"].split(":")[1]) for i in infos}))
import ray
node_ip = ray.nodes()[0]["NodeManagerAddress"]
ex.shutdown()
print(json.dumps({"results": results, "infos": infos, "procs": sorted(procs), "bad": bad, "node_ip": node_ip}))
"""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def test_local_starts_an_instance_for_the_run_and_stops_it(llm_server, tmp_path):
    temp_dir = f"/tmp/kray-local-{os.getpid()}"  # short: unix socket paths
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}  # Ray's auth token goes to ~/.ray
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_AUTH_MODE", None)
    try:
        out = subprocess.run([sys.executable, "-c", LOCAL_RUN, llm_server.url, temp_dir], capture_output=True,
                             text=True, timeout=300, env=env, cwd=tmp_path)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    results = got["results"]
    assert sorted(r["key"] for r in results) == sorted(f"k{i}" for i in range(12))
    assert all(r["status"] == "ok" for r in results) and llm_server.requests == 12
    assert {r["worker"] for r in results} == {i["worker"] for i in got["infos"]}
    assert len(got["infos"]) == 2
    assert got["node_ip"] == "127.0.0.2"  # not the machine's routable address
    assert got["bad"] == []  # nothing of the instance bound to or connected outside 127.0.0.0/8
    assert got["procs"]  # gcs_server, raylet, ... were children of the driver
    deadline = time.monotonic() + 60  # ray.shutdown() kills them; wait for the kernel to reap (event, not time)
    while any(_alive(p) for p in got["procs"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for p in got["procs"] if _alive(p)] == []
    assert (tmp_path / ".ray" / "auth_token").exists()  # Ray 2.60: token auth on for a new local instance
    assert "Token authentication" not in out.stderr  # ... and kto-build does not print Ray's notice about it


UNREACHABLE = r"""
import sys
from kto_build.adapters.ray_calls import RayExecutor, RayUnavailableError
try:
    RayExecutor(address=sys.argv[1], connect_timeout=5).connect()
except RayUnavailableError as e:
    print(e)
    raise SystemExit(2)
"""


@pytest.mark.parametrize("address, env_address, words", [
    ("auto", "127.0.0.2:1", "cannot reach the Ray cluster at 127.0.0.2:1: Connection refused"),
    ("auto", "ray://127.0.0.2:1", "cannot reach the Ray cluster at ray://127.0.0.2:1: Connection refused"),
    ("127.0.0.2:notaport", None, "ray address '127.0.0.2:notaport' is not host:port"),
])
def test_unreachable_cluster_is_one_line_before_any_ray_start(address, env_address, words, tmp_path):
    """`auto` follows RAY_ADDRESS; either way an unreachable cluster is one line, no traceback, no Ray started."""
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    if env_address:
        env["RAY_ADDRESS"] = env_address
    out = subprocess.run([sys.executable, "-c", UNREACHABLE, address], capture_output=True, text=True,
                         timeout=120, env=env, cwd=tmp_path)
    assert out.returncode == 2 and out.stderr == "", out.stderr[-2000:]
    assert out.stdout.count("\n") == 1 and words in out.stdout
    assert not (tmp_path / ".ray").exists()  # nothing of Ray was started or written


def test_socket_check_sees_a_non_loopback_peer():
    """The check the loopback tests rely on can fail: a socket to a non-loopback address is reported."""
    bad, wildcard = outside_loopback([
        {"state": "ESTAB", "local": "127.0.0.2:5000", "peer": "10.1.2.3:443", "process": "python", "pids": [1]},
        {"state": "LISTEN", "local": "0.0.0.0:6379", "peer": "0.0.0.0:*", "process": "gcs_server", "pids": [2]},
        {"state": "LISTEN", "local": "192.168.1.5:8265", "peer": "0.0.0.0:*", "process": "python", "pids": [3]},
        {"state": "ESTAB", "local": "[::ffff:127.0.0.2]:5001", "peer": "[::ffff:127.0.0.1]:80", "process": "x",
         "pids": [4]},
    ])
    assert [s["pids"] for s in bad] == [[1], [3]] and [s["pids"] for s in wildcard] == [[2]]
    assert sockets({os.getpid()}) is not None
