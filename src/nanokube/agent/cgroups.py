"""cgroups per pod and container, as the kubelet keeps them: cgroup v2 where the unified hierarchy has the
memory controller enabled for us, v1 otherwise (memory, cpu, cpuacct, pids, freezer hierarchies), and none with
a clear message where neither can be written.

Everything lives under the agent's own cgroup in each hierarchy (the server may itself sit in a nested cgroup):
``<own>/nanokube/pod<uid>/<container>``. Limits: memory limit, CPU quota (100 ms period), pids limit; requests:
CPU shares (v1) or weight (v2). A container's processes are killed through its cgroup (``cgroup.kill`` on v2,
freeze + SIGKILL every member + thaw on v1), and its cgroup is removed when the container is gone. OOM kills are
read from the kernel's counters (``memory.events`` / ``memory.oom_control``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from nanokube.api.quantity import ceil_div, parse_quantity

log = logging.getLogger(__name__)

V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer")
CFS_PERIOD_US = 100_000
MIN_SHARES, MAX_SHARES = 2, 262_144


@dataclass
class Limits:
    memory: int | None = None  # bytes
    cpu_millis: int | None = None
    cpu_request_millis: int | None = None
    pids: int | None = None

    @classmethod
    def of(cls, container: dict[str, object], pids: int | None = None) -> Limits:
        resources = container.get("resources") or {}
        assert isinstance(resources, dict)
        limits = resources.get("limits") or {}
        requests = resources.get("requests") or {}
        memory = limits.get("memory")
        cpu = limits.get("cpu")
        cpu_request = requests.get("cpu", cpu)
        return cls(memory=ceil_div(parse_quantity(str(memory)), Decimal(1)) if memory is not None else None,
                   cpu_millis=_millis(cpu), cpu_request_millis=_millis(cpu_request), pids=pids)


def _millis(value: object) -> int | None:
    if value is None:
        return None
    return ceil_div(parse_quantity(str(value)) * 1000, Decimal(1))


def cpu_shares(millis: int | None) -> int:
    """The kubelet's MilliCPUToShares: no request -> the minimum (2)."""
    if not millis:
        return MIN_SHARES
    return max(MIN_SHARES, min(MAX_SHARES, millis * 1024 // 1000))


def shares_to_weight(shares: int) -> int:
    """The kubelet's CpuSharesToCpuWeight (cgroup v2 weight 1..10000)."""
    return 1 + ((shares - 2) * 9999) // 262142


def _write(path: Path, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _keyed(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


@dataclass
class Cgroup:
    """One cgroup (a pod's or a container's) in every hierarchy the driver uses."""

    driver: Driver
    paths: dict[str, Path]  # controller ("" for v2) -> directory

    @property
    def procs_files(self) -> list[str]:
        return sorted({str(p / "cgroup.procs") for p in self.paths.values()})

    def members(self) -> set[int]:
        out: set[int] = set()
        for path in self.paths.values():
            out.update(int(x) for x in _read(path / "cgroup.procs").split() if x.isdigit())
        return out

    def oom_kills(self) -> int:
        if self.driver.version == 2:
            return _keyed(_read(self.paths[""] / "memory.events")).get("oom_kill", 0)
        memory = self.paths.get("memory")
        return _keyed(_read(memory / "memory.oom_control")).get("oom_kill", 0) if memory else 0

    def cpu_usage_ns(self) -> int | None:
        if self.driver.version == 2:
            usec = _keyed(_read(self.paths[""] / "cpu.stat")).get("usage_usec")
            return usec * 1000 if usec is not None else None
        acct = self.paths.get("cpuacct")
        text = _read(acct / "cpuacct.usage").strip() if acct else ""
        return int(text) if text.isdigit() else None

    def working_set(self) -> int | None:
        """Memory usage minus inactive file pages (what the kubelet reports as the working set)."""
        if self.driver.version == 2:
            current, stat = _read(self.paths[""] / "memory.current").strip(), _read(self.paths[""] / "memory.stat")
            inactive = _keyed(stat).get("inactive_file", 0)
        else:
            memory = self.paths.get("memory")
            if memory is None:
                return None
            current, stat = _read(memory / "memory.usage_in_bytes").strip(), _read(memory / "memory.stat")
            inactive = _keyed(stat).get("total_inactive_file", 0)
        return max(0, int(current) - inactive) if current.isdigit() else None

    def apply(self, limits: Limits) -> None:
        d = self.driver
        with contextlib.suppress(OSError):
            if d.version == 2:
                base = self.paths[""]
                if limits.memory is not None:
                    _write(base / "memory.max", str(limits.memory))
                    with contextlib.suppress(OSError):
                        _write(base / "memory.swap.max", "0")
                quota = "max" if not limits.cpu_millis else str(limits.cpu_millis * CFS_PERIOD_US // 1000)
                _write(base / "cpu.max", f"{quota} {CFS_PERIOD_US}")
                _write(base / "cpu.weight", str(shares_to_weight(cpu_shares(limits.cpu_request_millis))))
                if limits.pids:
                    _write(base / "pids.max", str(limits.pids))
                return
            if limits.memory is not None and "memory" in self.paths:
                _write(self.paths["memory"] / "memory.limit_in_bytes", str(limits.memory))
            if "cpu" in self.paths:
                quota = -1 if not limits.cpu_millis else max(1000, limits.cpu_millis * CFS_PERIOD_US // 1000)
                _write(self.paths["cpu"] / "cpu.cfs_period_us", str(CFS_PERIOD_US))
                _write(self.paths["cpu"] / "cpu.cfs_quota_us", str(quota))
                _write(self.paths["cpu"] / "cpu.shares", str(cpu_shares(limits.cpu_request_millis)))
            if limits.pids and "pids" in self.paths:
                _write(self.paths["pids"] / "pids.max", str(limits.pids))

    def kill(self) -> None:
        """SIGKILL every process in the cgroup, also ones that left the process group (setsid, double fork)."""
        if self.driver.version == 2:
            kill_file = self.paths[""] / "cgroup.kill"
            if kill_file.exists():
                with contextlib.suppress(OSError):
                    _write(kill_file, "1")
                return
        freezer = self.paths.get("freezer")
        frozen = False
        if freezer is not None:
            with contextlib.suppress(OSError):
                _write(freezer / "freezer.state", "FROZEN")  # nobody forks while we kill
                frozen = True
        for _ in range(3):
            pids = self.members()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if frozen:
                break
        if frozen and freezer is not None:
            with contextlib.suppress(OSError):
                _write(freezer / "freezer.state", "THAWED")

    def remove_soon(self, tries: int = 40, interval: float = 0.05) -> None:
        """Remove without blocking the event loop: retried while killed processes are still leaving."""
        if self.remove(timeout=0) or tries <= 0:
            return
        asyncio.get_running_loop().call_later(interval, self.remove_soon, tries - 1, interval)

    def remove(self, timeout: float = 2.0) -> bool:
        """rmdir in every hierarchy once empty (killed processes leave within milliseconds)."""
        deadline = time.monotonic() + timeout
        while self.members() and time.monotonic() < deadline:
            time.sleep(0.01)
        ok = True
        for path in self.paths.values():
            for child in sorted((p for p in path.iterdir() if p.is_dir()), reverse=True) if path.exists() else []:
                with contextlib.suppress(OSError):
                    child.rmdir()
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                ok = False
        return ok


@dataclass
class Driver:
    version: int  # 1 or 2; 0: no cgroups
    roots: dict[str, Path] = field(default_factory=dict)  # controller -> our node directory ("" on v2)
    reason: str = ""

    @property
    def enabled(self) -> bool:
        return self.version != 0

    def cgroup(self, *parts: str) -> Cgroup:
        return Cgroup(self, {c: root.joinpath(*parts) for c, root in self.roots.items()})

    def create(self, *parts: str) -> Cgroup | None:
        if not self.enabled:
            return None
        group = self.cgroup(*parts)
        try:
            for controller, path in group.paths.items():
                path.mkdir(parents=True, exist_ok=True)
                if controller == "memory":
                    with contextlib.suppress(OSError):
                        _write(path / "memory.use_hierarchy", "1")
            if self.version == 2:
                _enable_v2_controllers(self.roots[""], parts)
        except OSError as err:
            log.warning("cgroup %s: %s", "/".join(parts), err)
            return None
        return group


def _enable_v2_controllers(root: Path, parts: tuple[str, ...]) -> None:
    path = root
    for part in parts[:-1]:
        with contextlib.suppress(OSError):
            _write(path / "cgroup.subtree_control", "+memory +cpu +pids")
        path = path / part
    with contextlib.suppress(OSError):
        _write(path / "cgroup.subtree_control", "+memory +cpu +pids")


def _own_cgroups() -> dict[str, str]:
    """hierarchy key ("" for v2, else each controller name) -> our path in it, from /proc/self/cgroup."""
    out: dict[str, str] = {}
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        _id, controllers, path = line.split(":", 2)
        if not controllers:
            out[""] = path
        for name in controllers.split(","):
            if name:
                out[name] = path
    return out


def _mounts() -> dict[str, Path]:
    """hierarchy key -> mount point ("" for cgroup2), from /proc/self/mountinfo."""
    out: dict[str, Path] = {}
    for line in _read(Path("/proc/self/mountinfo")).splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(rfields) < 3 or len(fields) < 5:
            continue
        fstype, options, mount_point = rfields[0], rfields[2], fields[4]
        if fstype == "cgroup2":
            out.setdefault("", Path(mount_point))
        elif fstype == "cgroup":
            for opt in options.split(","):
                if opt in V1_CONTROLLERS:
                    out.setdefault(opt, Path(mount_point))
    return out


def _writable(path: Path) -> bool:
    probe = path / f"nanokube-probe-{os.getpid()}"
    try:
        probe.mkdir()
        probe.rmdir()
        return True
    except OSError:
        return False


def _private_mount_namespace() -> bool:
    """Not the init process's mount namespace (or that one is hidden from us, as in a sandbox)."""
    try:
        return os.stat("/proc/self/ns/mnt").st_ino != os.stat("/proc/1/ns/mnt").st_ino
    except OSError:
        return True


def mount_hierarchies(base: Path) -> list[Path]:
    """Mount our cgroup hierarchies under ``base`` when this mount namespace shows none (``ip netns exec``
    remounts /sys without them). Only in a private mount namespace, so nothing outlives it; returns the mounts."""
    if _mounts() or os.geteuid() != 0 or not _private_mount_namespace():
        return []
    made = []
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        _id, controllers, _path = line.split(":", 2)
        names = [c for c in controllers.split(",") if c in V1_CONTROLLERS]
        fstype, options = ("cgroup2", None) if not controllers else ("cgroup", controllers)
        if controllers and not names:
            continue
        target = base / (",".join(names) if names else "unified")
        target.mkdir(parents=True, exist_ok=True)
        argv = ["mount", "-t", fstype, *(["-o", options] if options else []), "cgroup", str(target)]
        if subprocess.run(argv, capture_output=True).returncode == 0:
            made.append(target)
    return made


def unmount(paths: list[Path]) -> None:
    for path in reversed(paths):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
        with contextlib.suppress(OSError):
            path.rmdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(driver: Driver) -> int:
    """Remove the node directories an agent that died without cleaning up left (``nanokube-<node>-<pid>``
    whose pid is gone): their processes are killed, their cgroups removed. Returns how many were removed."""
    removed = 0
    names = {p.name for root in driver.roots.values() if root.parent.exists() for p in root.parent.iterdir()
             if p.is_dir() and p.name.startswith("nanokube-")}
    for name in names:
        pid = name.rsplit("-", 1)[-1]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        stale = Driver(driver.version, {c: root.parent / name for c, root in driver.roots.items()})
        for group in _tree(stale):
            group.kill()
            group.remove(timeout=0.5)
        removed += 1
    return removed


def _tree(driver: Driver) -> list[Cgroup]:
    """Every cgroup under the driver's roots, deepest first, and the roots themselves last."""
    relative: set[tuple[str, ...]] = set()
    for root in driver.roots.values():
        for dirpath, _dirs, _files in os.walk(root):
            relative.add(Path(dirpath).relative_to(root).parts)
    return [driver.cgroup(*parts) for parts in sorted(relative, key=len, reverse=True)]


def detect(node_dir: str = "nanokube") -> Driver:
    """The cgroup driver this machine allows for us, rooted at ``<own cgroup>/<node_dir>``."""
    own, mounts = _own_cgroups(), _mounts()
    if "" in mounts and "" in own:
        base = mounts[""] / own[""].lstrip("/")
        controllers = _read(base / "cgroup.controllers").split()
        if {"memory", "cpu", "pids"} <= set(controllers) and _writable(base):
            return Driver(2, {"": base / node_dir})
    roots = {}
    for controller in V1_CONTROLLERS:
        if controller in mounts and controller in own:
            base = mounts[controller] / own[controller].lstrip("/")
            if _writable(base):
                roots[controller] = base / node_dir
    if "memory" in roots:
        return Driver(1, roots)
    return Driver(0, reason="no writable cgroup hierarchy with the memory controller (v2 needs memory, cpu and "
                            "pids enabled in our cgroup's cgroup.controllers; v1 a writable memory hierarchy): "
                            "pods run without resource limits")
