"""A `nanokube server --network netns` in its own network namespace, and the tools to look inside it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NETCLIENT = HERE / "netclient.py"
MISSING = [tool for tool in ("ip", "nft", "nsenter", "kubectl") if shutil.which(tool) is None]
SKIP_REASON = ("needs root" if os.geteuid() != 0 else f"needs {', '.join(MISSING)}" if MISSING else "")


HOST_SYSCTLS = ("/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/bridge/bridge-nf-call-iptables")


def host_sysctls() -> dict[str, str]:
    """The test process's own (host) values of what the server sets inside its namespace."""
    out = {}
    for path in HOST_SYSCTLS:
        try:
            out[path] = Path(path).read_text().strip()
        except OSError:
            out[path] = "-"
    return out


def start_time(pid: int | str) -> float | None:
    """The process's start time (clock ticks since boot), None when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if stat[0] == "Z" else float(stat[19])


def netns_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def pids_in(namespaces: set[tuple[int, int]]) -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and netns_id(f"/proc/{e}/ns/net") in namespaces]


@dataclass
class PodSandbox:
    namespace: str
    name: str
    ip: str
    netns: str
    pids: list[int]


@dataclass
class NetnsCluster:
    """A `nanokube server --network netns` running inside network namespace `name`."""

    name: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    ready_line: str = ""
    started_in: float = 0.0
    seen: dict[str, PodSandbox] = field(default_factory=dict)  # netns name -> sandbox, for the leak checks
    # Open descriptors of the test namespace and of every pod namespace seen: while held, a namespace's inode
    # cannot be reused by someone else's, so "a process is in it" stays exact after the pod is gone.
    pins: dict[str, int] = field(default_factory=dict)
    host_before: dict[str, str] = field(default_factory=host_sysctls)

    def _pin(self, key: str, path: str) -> None:
        if key not in self.pins:
            try:
                self.pins[key] = os.open(path, os.O_RDONLY)
            except OSError:
                pass

    @property
    def namespaces(self) -> set[tuple[int, int]]:
        out = set()
        for fd in self.pins.values():
            st = os.fstat(fd)
            out.add((st.st_dev, st.st_ino))
        return out

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"

    # -- running things inside -------------------------------------------------------------------------
    def run(self, *argv: str, check: bool = True, timeout: float = 30, input: str | None = None,
            ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["ip", "netns", "exec", self.name, *argv], input=input, capture_output=True,
                              text=True, timeout=timeout, env={**os.environ, "KUBECONFIG": str(self.kubeconfig)})
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def kubectl(self, *args: str, check: bool = True, input: str | None = None, timeout: float = 30,
                ) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, check=check, input=input, timeout=timeout)

    def apply(self, manifest: str | list[dict[str, Any]]) -> None:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump_all(manifest)
        self.kubectl("apply", "-f", "-", input=text)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def client(self, *args: str | int | float, timeout: float = 30) -> dict[str, Any]:
        """netclient.py run in the namespace itself (the node, not a pod)."""
        out = self.run(sys.executable, "-I", "-S", str(NETCLIENT), *map(str, args), timeout=timeout)
        return json.loads(out.stdout)

    # -- pods ----------------------------------------------------------------------------------------------
    def sandboxes(self) -> list[PodSandbox]:
        """Every pod sandbox the agent has on disk whose processes are alive (and remembers them all)."""
        out = []
        for path in (self.data_dir / "pods").glob("*/sandbox.json"):
            try:
                rec = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            alive = [int(p) for p, began in (rec.get("pids") or {}).items() if start_time(p) == began]
            if not rec.get("netns") or not alive:
                continue
            box = PodSandbox(rec["namespace"], rec["name"], rec["ip"], rec["netns"], alive)
            self._pin(box.netns, f"/proc/{alive[0]}/ns/net")
            self.seen[box.netns] = box
            out.append(box)
        return out

    def pod(self, name: str, namespace: str = "default") -> PodSandbox:
        for box in self.sandboxes():
            if box.name == name and box.namespace == namespace:
                return box
        raise AssertionError(f"no running sandbox for pod {namespace}/{name}")

    def in_pod(self, name: str, *argv: str, namespace: str = "default", check: bool = True,
               timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a command in the pod's network, mount and UTS namespaces (like `kubectl exec`)."""
        box = self.pod(name, namespace)
        proc = subprocess.run(["nsenter", "-t", str(box.pids[0]), "-n", "-m", "-u", "--", *argv],
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"in pod {name}: {' '.join(argv)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def pod_client(self, name: str, *args: str | int | float, namespace: str = "default") -> dict[str, Any]:
        # Passed as source: the pod's private /tmp hides a checkout that lives under /tmp.
        out = self.in_pod(name, sys.executable, "-I", "-S", "-c", NETCLIENT.read_text(), *map(str, args),
                          namespace=namespace)
        return json.loads(out.stdout)

    def pod_names(self, selector: str, namespace: str = "default") -> list[str]:
        pods = self.get("pods", "-n", namespace, "-l", selector)["items"]
        return sorted(p["metadata"]["name"] for p in pods)

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self, *args: str, timeout: float = 30) -> None:
        """Start the server (making the namespace first: loopback up, nothing else); returns once ready."""
        if not os.path.exists(f"/run/netns/{self.name}"):
            subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
            subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True, capture_output=True)
        self._pin(self.name, f"/run/netns/{self.name}")
        log = open(self.log_path, "ab")
        began = time.monotonic()
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.name, sys.executable, "-m", "nanokube", "server", "--network", "netns",
             "--data-dir", str(self.data_dir), "--node-name", "nk-e2e", *args],
            stdout=subprocess.PIPE, stderr=log, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(REPO / "src")})
        log.close()
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        buf = b""
        while time.monotonic() - began < timeout:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.logs()[-4000:]}")
            try:
                buf += os.read(self.proc.stdout.fileno(), 65536)
            except BlockingIOError:
                pass
            if b"nanokube ready" in buf:
                self.ready_line = next(line for line in buf.decode().splitlines() if line.startswith("nanokube ready"))
                self.started_in = time.monotonic() - began
                return
            time.sleep(0.01)
        raise AssertionError(f"server not ready in {timeout}s:\n{self.logs()[-4000:]}")

    def stop(self, timeout: float = 10.0) -> tuple[int | None, float]:
        """SIGTERM; returns (exit code, seconds taken); SIGKILL (code None) when it overran `timeout`."""
        if self.proc is None:
            return None, 0.0
        self.sandboxes()
        began = time.monotonic()
        code: int | None = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        took = time.monotonic() - began
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None
        return code, took

    def crash(self) -> None:
        """SIGKILL the server process alone, as a crash would: its pods and network state stay behind."""
        assert self.proc is not None
        self.sandboxes()
        self.proc.kill()
        self.proc.wait(5)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- what is left --------------------------------------------------------------------------------------
    def leftovers(self) -> list[str]:
        """Everything the server should have removed on stop, described; [] when clean."""
        problems = []
        if self.proc is not None and self.proc.poll() is None:
            problems.append("server still running")
        for pid in pids_in(self.namespaces):
            problems.append(f"process {pid} still in a test network namespace: {_cmdline(pid)}")
        for box in self.seen.values():
            if os.path.exists(f"/run/netns/{box.netns}"):
                problems.append(f"pod network namespace {box.netns} left")
        if os.path.exists(f"/run/netns/{self.name}"):
            links = _ip_json(self.name, "link")
            problems += [f"link {link['ifname']} left" for link in links if link["ifname"] != "lo"]
            for link in _ip_json(self.name, "addr"):
                for a in link.get("addr_info", []):
                    if a["local"] not in ("127.0.0.1", "::1"):
                        problems.append(f"address {a['local']} on {link['ifname']} left")
            problems += [f"route {r.get('dst')} left" for r in _ip_json(self.name, "route")]
            tables = subprocess.run(["ip", "netns", "exec", self.name, "nft", "list", "tables"],
                                    capture_output=True, text=True).stdout.split()
            if tables:
                problems.append(f"nft tables left: {' '.join(tables)}")
        if host_sysctls() != self.host_before:
            problems.append(f"host sysctls changed: {self.host_before} -> {host_sysctls()}")
        with open("/proc/self/mountinfo") as fh:
            problems += [f"mount left: {line.split()[4]}" for line in fh
                         if str(self.data_dir) in line or any(b.netns in line for b in self.seen.values())]
        return problems

    def destroy(self) -> list[str]:
        """Remove everything whatever state it is in (the server, stray processes, namespaces, the data dir);
        returns what could not be removed."""
        self.stop(timeout=12)
        for pid in pids_in(self.namespaces):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        netns_names = {box.netns for box in self.seen.values()}
        # Pods the test never observed (it failed early) are still recorded by the agent in the data dir.
        for record in self.data_dir.glob("**/sandbox.json"):
            with contextlib.suppress(OSError, ValueError):
                netns_names.add(json.loads(record.read_text()).get("netns") or "")
        for netns in sorted(n for n in netns_names if n):
            if os.path.exists(f"/run/netns/{netns}"):
                subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        deadline = time.monotonic() + 5
        while pids_in(self.namespaces) and time.monotonic() < deadline:
            time.sleep(0.02)  # SIGKILLed processes are gone once their parent (or init) has reaped them
        problems = self.leftovers()
        if os.path.exists(f"/run/netns/{self.name}"):
            problems.append(f"cannot remove network namespace {self.name}")
        for fd in self.pins.values():
            os.close(fd)
        self.pins.clear()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        return problems


def _ip_json(netns: str, what: str) -> list[dict[str, Any]]:
    out = subprocess.run(["ip", "-n", netns, "-j", what, "show"], capture_output=True, text=True).stdout
    return json.loads(out or "[]")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "?"
