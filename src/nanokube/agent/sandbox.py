"""A pod's sandbox: its directory under the data dir, IP, network namespace, /etc files and the record
that lets a restarted agent remove whatever a crashed one left behind."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nanokube.agent import netns
from nanokube.agent.etcfiles import hosts_file, pod_hostname, resolv_conf
from nanokube.agent.sweep import kill_pod_processes
from nanokube.api.meta import Obj

log = logging.getLogger(__name__)

RECORD = "sandbox.json"


@dataclass
class SandboxRecord:
    uid: str
    namespace: str
    name: str
    ip: str = ""
    netns: str | None = None
    veth: str | None = None
    created_paths: list[str] = field(default_factory=list)  # mount points made on the host, removed at the end
    mount_targets: list[str] = field(default_factory=list)  # every host path a container mounts over
    pids: dict[str, float] = field(default_factory=dict)  # pid -> process start time (clock ticks)


def process_start_time(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return None
    return float(stat.rsplit(")", 1)[1].split()[19])


class Sandbox:
    def __init__(self, pod_dir: Path, record: SandboxRecord) -> None:
        self.dir = pod_dir
        self.record = record

    @property
    def ip(self) -> str:
        return self.record.ip

    @property
    def netns_path(self) -> str | None:
        return netns.netns_path(self.record.netns) if self.record.netns else None

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / (RECORD + ".tmp")
        tmp.write_text(json.dumps(asdict(self.record)))
        os.replace(tmp, self.dir / RECORD)

    def write_etc(self, pod: Obj, cluster_dns: str, cluster_domain: str) -> dict[str, Path]:
        etc = self.dir / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        hostname, _ = pod_hostname(pod, cluster_domain)
        files = {"/etc/hosts": hosts_file(pod, self.record.ip, cluster_domain),
                 "/etc/resolv.conf": resolv_conf(pod, cluster_dns, cluster_domain),
                 "/etc/hostname": hostname + "\n"}
        out = {}
        for target, text in files.items():
            path = etc / Path(target).name
            path.write_text(text)
            out[target] = path
        return out

    async def create_network(self, cidr: str) -> None:
        rec = self.record
        rec.netns = netns.netns_name(rec.name, rec.uid)
        rec.veth = netns.veth_name(rec.uid)
        self.save()  # before touching the system, so a crash in between is still cleaned up
        await netns.delete_pod_network(rec.netns, rec.veth)
        await netns.create_pod_network(rec.netns, rec.veth, rec.ip, cidr, f"{rec.namespace}/{rec.name}")

    def ensure_mount_point(self, target: str, is_dir: bool) -> None:
        """Make a missing mount point on the host (the bind itself stays inside the pod's mount namespace)."""
        path = Path(target)
        if target not in self.record.mount_targets:
            self.record.mount_targets.append(target)
        if path.exists() or path.is_symlink():
            return
        missing = []
        probe = path
        while not probe.exists():
            missing.append(probe)
            probe = probe.parent
        for item in reversed(missing):
            if item == path and not is_dir:
                item.touch()
            else:
                item.mkdir()
            self.record.created_paths.append(str(item))
        self.save()

    def add_pid(self, pid: int) -> None:
        start = process_start_time(pid)
        if start is not None:
            self.record.pids[str(pid)] = start
            self.save()

    def drop_pid(self, pid: int) -> None:
        if self.record.pids.pop(str(pid), None) is not None:
            self.save()

    async def kill_processes(self) -> None:
        """SIGKILL every process of the pod: the recorded ones and those that left their groups (setsid)."""
        kill_leftovers(self.record)
        await kill_pod_processes(pod_dir=str(self.dir), netns_path=self.netns_path)

    async def teardown(self, *, keep_dir: bool = True, others: list[Sandbox] | None = None) -> None:
        """Kill what is left, delete the network, remove the mount points this pod made. A mount point another
        live pod still mounts over is handed to that pod instead (removing it would unmount it there)."""
        await self.kill_processes()
        rec = self.record
        if rec.netns and rec.veth:
            await netns.delete_pod_network(rec.netns, rec.veth)
        removable = []
        for path in rec.created_paths:
            heir = next((o for o in others or [] if o is not self and any(
                t == path or t.startswith(path.rstrip("/") + "/") for t in o.record.mount_targets)), None)
            if heir is None:
                removable.append(path)
            else:
                heir.record.created_paths.append(path)
                heir.save()
        remove_created_paths(removable)
        rec.created_paths.clear()
        rec.mount_targets.clear()
        rec.netns = rec.veth = None
        if keep_dir:
            self.save()
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def kill_leftovers(record: SandboxRecord) -> None:
    for pid_text, start in list(record.pids.items()):
        pid = int(pid_text)
        if process_start_time(pid) == start:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    record.pids.clear()


def remove_created_paths(paths: list[str]) -> None:
    for text in reversed(paths):
        path = Path(text)
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            elif path.is_file() and path.stat().st_size == 0:
                path.unlink()


def load_records(pods_dir: Path) -> list[tuple[Path, SandboxRecord]]:
    out = []
    if not pods_dir.is_dir():
        return out
    for entry in pods_dir.iterdir():
        path = entry / RECORD
        try:
            data = json.loads(path.read_text())
            out.append((entry, SandboxRecord(**data)))
        except (OSError, ValueError, TypeError):
            continue
    return out


async def clean_leftovers(pods_dir: Path) -> int:
    """Remove processes, namespaces, veths and mount points a previous (crashed) agent left; returns how many
    sandboxes needed it. Pod directories stay (emptyDir data survives an agent restart)."""
    count = 0
    for pod_dir, record in load_records(pods_dir):
        if record.pids or record.netns or record.created_paths:
            count += 1
            await Sandbox(pod_dir, record).teardown()
    return count
