"""A lab of hosts on one machine: network namespaces on bridges inside one parent namespace with no uplink.

    nkl<id>-p     the parent: bridges `bra` (192.168.77.0/24) and, for a routed lab, `brb` (192.168.78.0/24);
                  no veth into the machine's own namespace, so nothing leaves the lab
    nkl<id>-hN    host N: `eth0` on a bridge with its own IP, its own `nk0`, nft tables and routes
    nkl<id>-r     (routed lab) a router with a leg on each bridge, forwarding between them
    nkl<id>-c     a client on `bra` (192.168.77.100)

`nanokube server --network netns` runs on host 1, `nanokube agent --server https://HOST1:6443` on the others,
each through `ip netns exec` (its own mount namespace and /sys). Pod network namespaces are global names in
/run/netns; the agent names them after the pod's UID, so hosts never clash. `destroy` kills what it started
(by PID), deletes every pod namespace recorded in the data dirs and every `nkl<id>-*` namespace (their veths,
bridges, VXLAN devices and nft tables go with them) and the data dirs, also after a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tests.netns.cluster import netns_id, pids_in
from tests.polling import eventually

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NETCLIENT = REPO / "tests" / "netns" / "netclient.py"
MISSING = [t for t in ("ip", "nft", "nsenter", "kubectl", "bridge") if shutil.which(t) is None]
SKIP_REASON = "needs root" if os.geteuid() != 0 else f"needs {', '.join(MISSING)}" if MISSING else ""
CLIENT_IP = "192.168.77.100"


def sh(*argv: str, check: bool = True, timeout: float = 30, input: str | None = None,
       env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@dataclass
class Host:
    index: int
    netns: str
    ip: str
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    crashed: bool = False  # SIGKILLed by a test: its pods and their namespaces stay behind, as on a real crash

    @property
    def name(self) -> str:
        return f"h{self.index}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.with_suffix(".log")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def run(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", self.netns, *argv, check=check, timeout=timeout)

    def pod_pid(self, namespace: str, name: str) -> int:
        for path in (self.data_dir / "pods").glob("*/sandbox.json"):
            with contextlib.suppress(OSError, ValueError):
                rec = json.loads(path.read_text())
                if (rec.get("namespace"), rec.get("name")) == (namespace, name) and rec.get("pids"):
                    return int(next(iter(rec["pids"])))
        raise AssertionError(f"no sandbox for pod {namespace}/{name} on {self.name}")

    def pod_netns_names(self) -> set[str]:
        out = set()
        for path in (self.data_dir / "pods").glob("*/sandbox.json"):
            with contextlib.suppress(OSError, ValueError):
                out.add(json.loads(path.read_text()).get("netns") or "")
        return out - {""}


@dataclass
class Lab:
    hosts_count: int = 3
    routed: bool = False  # hosts 2.. on a second bridge behind a router: VXLAN between the two sides
    backend: str = "auto"
    grace: float = 4.0
    eviction: int = 8  # tolerationSeconds of node.kubernetes.io/unreachable in the test pods
    lab_id: str = field(default_factory=lambda: secrets.token_hex(3))
    hosts: list[Host] = field(default_factory=list)
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="nanokube-lab-")))

    @property
    def prefix(self) -> str:
        return f"nkl{self.lab_id}"

    @property
    def parent(self) -> str:
        return f"{self.prefix}-p"

    @property
    def client_ns(self) -> str:
        return f"{self.prefix}-c"

    @property
    def server(self) -> Host:
        return self.hosts[0]

    @property
    def kubeconfig(self) -> Path:
        return self.server.data_dir / "kubeconfig.yaml"

    # -- wiring --------------------------------------------------------------------------------------------
    def _netns(self, name: str) -> None:
        sh("ip", "netns", "add", name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def _plug(self, netns: str, bridge: str, address: str, veth: str, gateway: str | None = None) -> None:
        sh("ip", "-n", self.parent, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
        sh("ip", "-n", self.parent, "link", "set", veth, "master", bridge, "up")
        sh("ip", "-n", netns, "addr", "add", address, "dev", "eth0")
        sh("ip", "-n", netns, "link", "set", "eth0", "up")
        if gateway:
            sh("ip", "-n", netns, "route", "add", "default", "via", gateway)

    def build(self) -> None:
        self._netns(self.parent)
        for bridge in ("bra", "brb") if self.routed else ("bra",):
            sh("ip", "-n", self.parent, "link", "add", bridge, "type", "bridge")
            sh("ip", "-n", self.parent, "link", "set", bridge, "up")
        if self.routed:
            router = f"{self.prefix}-r"
            self._netns(router)
            sh("ip", "-n", self.parent, "link", "add", "ra", "type", "veth", "peer", "name", "lega", "netns", router)
            sh("ip", "-n", self.parent, "link", "add", "rb", "type", "veth", "peer", "name", "legb", "netns", router)
            for veth, bridge, leg, addr in (("ra", "bra", "lega", "192.168.77.1/24"),
                                         ("rb", "brb", "legb", "192.168.78.1/24")):
                sh("ip", "-n", self.parent, "link", "set", veth, "master", bridge, "up")
                sh("ip", "-n", router, "addr", "add", addr, "dev", leg)
                sh("ip", "-n", router, "link", "set", leg, "up")
            sh("ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for n in range(1, self.hosts_count + 1):
            far = self.routed and n > 1
            ip = f"192.168.78.{10 + n}" if far else f"192.168.77.{10 + n}"
            host = Host(n, f"{self.prefix}-h{n}", ip, self.tmp / f"h{n}")
            self._netns(host.netns)
            gateway = ("192.168.78.1" if far else "192.168.77.1") if self.routed else None
            self._plug(host.netns, "brb" if far else "bra", f"{ip}/24", f"v{n}", gateway)
            self.hosts.append(host)
        self._netns(self.client_ns)
        self._plug(self.client_ns, "bra", f"{CLIENT_IP}/24", "vc", "192.168.77.1" if self.routed else None)

    # -- nanokube --------------------------------------------------------------------------------------------
    def _spawn(self, host: Host, argv: list[str]) -> None:
        host.data_dir.mkdir(parents=True, exist_ok=True)
        with open(host.log_path, "ab") as log:
            host.proc = subprocess.Popen(["ip", "netns", "exec", host.netns, sys.executable, "-m", "nanokube", *argv],
                                         stdout=subprocess.PIPE, stderr=log, start_new_session=True,
                                         env={**os.environ, "PYTHONPATH": str(REPO / "src")})
        assert host.proc.stdout is not None
        os.set_blocking(host.proc.stdout.fileno(), False)

    def _await_line(self, host: Host, marker: bytes, timeout: float) -> None:
        assert host.proc is not None and host.proc.stdout is not None
        deadline = time.monotonic() + timeout
        buf = b""
        while time.monotonic() < deadline:
            if host.proc.poll() is not None:
                raise AssertionError(f"{host.name} exited with {host.proc.returncode}:\n{host.logs()[-4000:]}")
            with contextlib.suppress(BlockingIOError):
                buf += os.read(host.proc.stdout.fileno(), 65536)
            if marker in buf:
                return
            time.sleep(0.02)
        raise AssertionError(f"{host.name} not ready in {timeout}s:\n{host.logs()[-4000:]}")

    def start_server(self, timeout: float = 60) -> None:
        host = self.server
        self._spawn(host, ["server", "--network", "netns", "--data-dir", str(host.data_dir), "--node-name", host.name,
                           "--node-ip", host.ip, "--flannel-backend", self.backend,
                           "--node-monitor-grace-period", str(self.grace), "--dns-upstream", "127.0.0.1:9",
                           "--proxy-status-port", "0"])
        self._await_line(host, b"nanokube ready", timeout)

    def start_agent(self, host: Host, timeout: float = 60) -> None:
        self._spawn(host, ["agent", "--server", f"https://{self.server.ip}:6443",
                           "--token-file", str(self.server.data_dir / "token"),
                           "--ca-file", str(self.server.data_dir / "pki" / "ca.crt"),
                           "--network", "netns", "--data-dir", str(host.data_dir), "--node-name", host.name,
                           "--node-ip", host.ip, "--flannel-backend", self.backend,
                           "--node-lease-duration-seconds", str(self.grace), "--proxy-status-port", "0"])
        self._await_line(host, b"nanokube node ready", timeout)

    def start(self) -> None:
        self.build()
        self.start_server()
        for host in self.hosts[1:]:
            self.start_agent(host)
        eventually(lambda: self.ready_nodes() == {h.name for h in self.hosts}, timeout=30)

    def ready_nodes(self) -> set[str]:
        return {n["metadata"]["name"] for n in self.get("nodes")["items"]
                if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions") or [])}

    def kill(self, host: Host, sig: int = signal.SIGKILL) -> None:
        """Signal the host's nanokube (its whole process group: `ip netns exec` and Python)."""
        if host.proc is None:
            return
        host.crashed = host.crashed or sig == signal.SIGKILL
        with contextlib.suppress(ProcessLookupError):
            os.killpg(host.proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            host.proc.wait(15)
        if host.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(host.proc.pid, signal.SIGKILL)
            host.proc.wait(5)
        if host.proc.stdout:
            host.proc.stdout.close()
        host.proc = None

    def move(self, host: Host, new_ip: str) -> None:
        """Give an agent's host a new address on its link and restart the agent with it as --node-ip (a node
        changing IP: its Node's InternalIP changes, the other hosts' routes must follow)."""
        assert host is not self.server, "the agents reach the API at the server's address"
        self.kill(host, signal.SIGTERM)
        prefix = host.ip.rsplit(".", 1)[0]
        host.run("ip", "addr", "del", f"{host.ip}/24", "dev", "eth0")  # its routes go with it
        host.run("ip", "addr", "add", f"{new_ip}/24", "dev", "eth0")
        if self.routed:
            host.run("ip", "route", "replace", "default", "via", f"{prefix}.1")
        host.ip = new_ip
        self.start_agent(host)

    # -- looking -----------------------------------------------------------------------------------------------
    def kubectl(self, *args: str, check: bool = True, input: str | None = None, timeout: float = 30,
                ) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", self.server.netns, "kubectl", *args, check=check, input=input,
                  timeout=timeout, env={**os.environ, "KUBECONFIG": str(self.kubeconfig)})

    def apply(self, objs: list[dict[str, Any]]) -> None:
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs))

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def netclient(self, netns: str, *args: str | int | float, timeout: float = 60) -> dict[str, Any]:
        out = sh("ip", "netns", "exec", netns, sys.executable, "-I", "-S", str(NETCLIENT), *map(str, args),
                 timeout=timeout)
        return json.loads(out.stdout)

    def pod_exec(self, host: Host, pod: str, *argv: str, namespace: str = "default", check: bool = True,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        pid = host.pod_pid(namespace, pod)
        return sh("nsenter", "-t", str(pid), "-n", "-m", "-u", "--", *argv, check=check, timeout=timeout)

    def pod_client(self, host: Host, pod: str, *args: str | int | float) -> dict[str, Any]:
        # passed as source: the pod's private /tmp hides a checkout under /tmp
        out = self.pod_exec(host, pod, sys.executable, "-I", "-S", "-c", NETCLIENT.read_text(), *map(str, args))
        return json.loads(out.stdout)

    def _lab_netns(self) -> list[str]:
        names = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
        return sorted(n for n in names if n.startswith(self.prefix + "-"))

    # -- cleanup ---------------------------------------------------------------------------------------------
    def destroy(self) -> list[str]:
        """Stop everything and remove every namespace of the lab; returns what was left behind."""
        for host in reversed(self.hosts):
            self.kill(host, signal.SIGTERM)
        pod_netns: set[str] = set()
        problems = []
        for host in self.hosts:
            names = host.pod_netns_names()
            pod_netns |= names
            problems += [f"pod netns {n} left by {host.name}'s agent" for n in sorted(names)
                         if not host.crashed and os.path.exists(f"/run/netns/{n}")]
        ours = {f"/run/netns/{n}" for n in pod_netns} | {f"/run/netns/{n}" for n in self._lab_netns()}
        inodes = {ident for ident in map(netns_id, ours) if ident is not None}
        for pid in pids_in(inodes):  # pods of a crashed agent, or anything a test left running in the lab
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while pids_in(inodes) and time.monotonic() < deadline:
            time.sleep(0.02)
        for name in sorted(pod_netns):
            if os.path.exists(f"/run/netns/{name}"):
                sh("ip", "netns", "del", name, check=False)
        for name in self._lab_netns():
            sh("ip", "netns", "del", name, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)
        left = [n for n in (os.listdir("/run/netns") if os.path.isdir("/run/netns") else [])
                if n.startswith(self.prefix) or n in pod_netns]
        problems += [f"netns {n} not removed" for n in left]
        return problems
