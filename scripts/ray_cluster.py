"""A real two-node Ray cluster on loopback, for tests and benchmarks.

``LoopbackCluster(root)`` starts ``ray start --head`` and a second
``ray start --address`` node process, both with ``--node-ip-address 127.0.0.2``
(Ray 2.60 rewrites 127.0.0.1 to the machine's routable address, so another
loopback address is used), ``RAY_AUTH_MODE=disabled``, the dashboard off, a
small object store, free ports picked up front and a temp dir of its own. Each
node runs ``ray start --block`` in its own process group, so stopping kills
exactly the processes this cluster started (never ``ray stop``, which stops
every Ray process on the machine).

    with LoopbackCluster(tmp_path) as cluster:
        ray.init(address=cluster.address, _node_ip_address=cluster.ip)

Node resources: the head has ``{"head_node": 100}``, the worker
``{"worker_node": 100}``, so actors can be placed on one node or the other.

``sockets(pids)`` lists the TCP sockets of the given processes (from
``ss -tanp``); ``outside_loopback`` splits them into what is bound to or
connected to a non-loopback address, and what listens on a wildcard address.

As a script: ``python scripts/ray_cluster.py`` starts a cluster, prints the
start time and the socket check, and stops it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

IP = "127.0.0.2"
HEAD_RESOURCE = "head_node"
WORKER_RESOURCE = "worker_node"


def free_port(ip: str = IP) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def _accepts(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=1):
            return True
    except OSError:
        return False


def _ray_bin() -> str:
    return str(Path(sys.executable).parent / "ray")


class LoopbackCluster:
    def __init__(self, root: Path | str, head_cpus: int = 2, worker_cpus: int = 2,
                 object_store_bytes: int = 80 * 1024 * 1024, ip: str = IP):
        # unix socket paths must stay under ~107 bytes: keep the temp dir short
        root = Path(root)
        self.temp_dir = Path(f"/tmp/kray-{os.getpid()}-{abs(hash(str(root))) % 10**6}")  # noqa: S108 - short: unix sockets
        self.log_dir = root
        self.ip = ip
        self.port = free_port(ip)
        self.address = f"{ip}:{self.port}"
        self.head_cpus, self.worker_cpus = head_cpus, worker_cpus
        self.object_store_bytes = object_store_bytes
        self.procs: dict[str, subprocess.Popen] = {}
        self.start_seconds: float | None = None

    # ------------------------------------------------------------ start
    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
                   # a killed node is noticed in ~3-5 s instead of ~15 s (GCS health checks of raylets); 3 misses
                   # of 500 ms were likely too few: on a busy machine a live raylet exited (code 1, no error logged)
                   RAY_health_check_period_ms="500", RAY_health_check_timeout_ms="2000",
                   RAY_health_check_failure_threshold="6")
        return env

    def _common(self, name: str, cpus: int, resource: str) -> list[str]:
        return ["--block", "--node-ip-address", self.ip, "--num-cpus", str(cpus), "--num-gpus", "0",
                "--resources", json.dumps({resource: 100}), "--object-store-memory", str(self.object_store_bytes),
                "--disable-usage-stats", "--metrics-export-port", str(free_port()),
                "--dashboard-agent-listen-port", str(free_port()),
                "--dashboard-agent-grpc-port", str(free_port()), "--runtime-env-agent-port", str(free_port())]

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.log_dir / f"ray-{name}.log", "w")
        self.procs[name] = subprocess.Popen([_ray_bin(), "start", *args], stdout=log, stderr=subprocess.STDOUT,
                                            env=self.env(), start_new_session=True)
        log.close()

    def start(self, timeout: float = 90) -> LoopbackCluster:
        t0 = time.monotonic()
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._spawn("head", ["--head", "--port", str(self.port), "--temp-dir", str(self.temp_dir),
                             "--include-dashboard", "false", "--dashboard-host", self.ip,
                             "--dashboard-port", str(free_port()), "--ray-client-server-port", str(free_port()),
                             *self._common("head", self.head_cpus, HEAD_RESOURCE)])
        # the worker node's `ray start` may begin once the GCS accepts connections (its CLI start-up
        # then overlaps the head's raylet start-up)
        while not _accepts(self.ip, self.port):
            self._check(timeout, t0, 1)
            time.sleep(0.1)
        self._spawn("worker", ["--address", self.address,
                               *self._common("worker", self.worker_cpus, WORKER_RESOURCE)])
        self._wait_nodes(1, timeout, t0)
        self._wait_nodes(2, timeout, t0)
        self.start_seconds = time.monotonic() - t0
        return self

    def ensure_up(self, timeout: float = 90) -> list[str]:
        """Start again any node whose ``ray start --block`` has exited (a test killed it, or Ray's own health
        check gave up on it); returns the names started again."""
        dead = [name for name, p in self.procs.items() if p.poll() is not None]
        if "head" in dead:
            self.stop()
            self.start(timeout)
            return ["head", "worker"]
        t0 = time.monotonic()
        for name in dead:  # keep the log of the node that left
            log = self.log_dir / f"ray-{name}.log"
            log.replace(log.with_name(f"ray-{name}.exited-{int(time.time())}.log"))
            self._spawn(name, ["--address", self.address, *self._common(name, self.worker_cpus, WORKER_RESOURCE)])
        if dead:
            self._wait_nodes(2, timeout, t0)
        return dead

    def alive_nodes(self) -> list[dict]:
        """Alive nodes from the GCS (``ray list nodes``, no driver needed)."""
        out = subprocess.run([_ray_bin(), "list", "nodes", "--address", self.address, "--format", "json",
                              "--filter", "state=ALIVE"], capture_output=True, text=True, env=self.env(),
                             timeout=60)
        if out.returncode != 0:
            return []
        try:
            return json.loads(out.stdout)
        except ValueError:
            return []

    def _nodes_via_gcs(self) -> int:
        """Alive nodes, counted through the GCS client (fast, no dashboard needed)."""
        code = ("import ray._raylet as r,sys;c=r.GcsClient(address=sys.argv[1]);"
                "print(sum(1 for n in c.get_all_node_info(timeout=5).values() if n.state==0))")
        out = subprocess.run([sys.executable, "-c", code, self.address], capture_output=True, text=True,
                             env=self.env(), timeout=60)
        try:
            return int(out.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return 0

    def _wait_nodes(self, n: int, timeout: float, t0: float) -> None:
        # cheap first: each `ray start --block` logs this once its node is up; then ask the GCS
        name = "head" if n == 1 else "worker"
        while "Ray runtime started" not in (self.log_dir / f"ray-{name}.log").read_text(errors="replace"):
            self._check(timeout, t0, n)
            time.sleep(0.1)
        while self._nodes_via_gcs() < n:
            self._check(timeout, t0, n)
            time.sleep(0.2)

    def _check(self, timeout: float, t0: float, n: int) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"ray node '{name}' exited ({p.returncode}); see {self.log_dir}/ray-{name}.log")
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"ray cluster: {n} node(s) not alive after {timeout:.0f} s")

    # ------------------------------------------------------------- stop
    def pids(self, name: str | None = None) -> list[int]:
        """Every live process in this cluster's node sessions (or one node's). Ray 2.60 puts each worker (actor)
        process in a process group of its own, but it stays in its node's session."""
        groups = {p.pid for n, p in self.procs.items() if name is None or n == name}
        pids = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                with contextlib.suppress(OSError):
                    stat = (d / "stat").read_text()
                    fields = stat[stat.rindex(")") + 2:].split()
                    if fields[0] != "Z" and int(fields[3]) in groups:  # the session id
                        pids.append(int(d.name))
        return pids

    def kill_node(self, name: str, sig: int = signal.SIGKILL) -> None:
        """kill -9 one node: its ``ray start``, raylet and every worker process in its session (the actors'
        processes are in process groups of their own: killing the node's group alone leaves them ~2 s to go on)."""
        p = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, sig)
        deadline = time.monotonic() + 30
        while (pids := self.pids(name)) and time.monotonic() < deadline:  # until none is left (or forked since)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            time.sleep(0.02)
        p.wait(timeout=30)

    def stop(self) -> None:
        for name in ("worker", "head"):
            p = self.procs.get(name)
            if p is None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=15)

    def __enter__(self) -> LoopbackCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


# ------------------------------------------------------------- sockets
_SS_PID = re.compile(r"pid=(\d+)")


def sockets(pids: list[int] | set[int]) -> list[dict]:
    """TCP sockets (listening and connected) of the given processes, from ``ss -tanp``."""
    pids = set(pids)
    out = subprocess.run(["ss", "-tanpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 6:
            continue
        owners = {int(p) for p in _SS_PID.findall(line)}
        if owners & pids:
            found.append({"state": parts[0], "local": parts[3], "peer": parts[4],
                          "process": line.split("((", 1)[-1].split(",", 1)[0].strip('"'),
                          "pids": sorted(owners & pids)})
    return found


def _host(addr: str) -> str:
    host = addr.rsplit(":", 1)[0].strip("[]")
    host = host.split("%", 1)[0]
    return host[7:] if host.startswith("::ffff:") else host


def _is_wildcard(host: str) -> bool:
    return host in ("*", "0.0.0.0", "::")  # noqa: S104 - recognizing, not binding


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def outside_loopback(socks: list[dict]) -> tuple[list[dict], list[dict]]:
    """(sockets bound or connected to a non-loopback address, sockets listening on a wildcard address)."""
    bad, wildcard = [], []
    for s in socks:
        local, peer = _host(s["local"]), _host(s["peer"])
        if _is_wildcard(local):
            (wildcard if s["state"] == "LISTEN" else bad).append(s)
        elif not _is_loopback(local) or not (_is_wildcard(peer) or _is_loopback(peer)):
            bad.append(s)
    return bad, wildcard


#: processes of a Ray 2.60 cluster that listen on the wildcard address (no flag binds them elsewhere): the GCS,
#: raylets, dashboard agents, the metrics exporters (``python``) and every core worker's gRPC server: the
#: actors' (``ray::<Class>``) and the driver's (``python`` or ``kto-build``)
RAY_WILDCARD = {"gcs_server", "raylet", "python", "kto-build"}


def known_wildcard(socks: list[dict]) -> bool:
    """Every wildcard listener in ``socks`` belongs to one of Ray's own processes (see ``RAY_WILDCARD``)."""
    return all(s["process"] in RAY_WILDCARD or s["process"].startswith("ray::") for s in socks)


def main() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, LoopbackCluster(Path(tmp)) as cluster:
        print(f"cluster at {cluster.address}: 2 nodes alive after {cluster.start_seconds:.1f} s")
        bad, wildcard = outside_loopback(sockets(cluster.pids()))
        print(f"sockets outside 127.0.0.0/8: {len(bad)}; wildcard listeners: "
              + ", ".join(f"{s['process']} {s['local']}" for s in wildcard))


if __name__ == "__main__":
    main()
