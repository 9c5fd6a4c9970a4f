"""Resource limits that hold (cgroups): a memory limit OOM-kills the container, reported as the kubelet does and
restarted with back-off, nothing else touched; limits and shares in the container's cgroup; every process of a
container (also one that escaped with setsid) killed on stop; cgroups removed; status.qosClass."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import Server
from tests.polling import eventually

HOG = ("import time; b = bytearray(200 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(60)")


def _pod(cluster: Server, name: str) -> dict:
    return json.loads(cluster.kubectl("get", "pod", name, "-o", "json").stdout)


def _cgroup_dirs(pid: int) -> dict[str, Path]:
    """controller -> the process's cgroup directory (v1 hierarchies; "" for v2)."""
    mounts = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype, opts = right.split()[0], right.split()[2]
        if fstype == "cgroup2":
            mounts.setdefault("", left.split()[4])
        elif fstype == "cgroup":
            for opt in opts.split(","):
                mounts.setdefault(opt, left.split()[4])
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _id, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            if c in mounts:
                out[c] = Path(mounts[c]) / path.lstrip("/")
    return out


def _container_pid(cluster: Server, pod: str, marker: str) -> int:
    def find() -> int | None:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                        return int(entry)
                except OSError:
                    continue
        return None
    return eventually(find, 30, what=f"the process of {pod}")


def test_memory_limit_oom_kills_and_restarts_with_back_off(cluster: Server, sleeper: str) -> None:
    cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hog"},
                   "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                       {"name": "hog", "image": "busybox", "command": ["python3", "-c", HOG],
                        "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}}}]}})

    def oom_reported() -> dict | None:
        status = (_pod(cluster, "hog").get("status") or {})
        cs = (status.get("containerStatuses") or [{}])[0]
        last = (cs.get("lastState") or {}).get("terminated") or {}
        return cs if last.get("reason") == "OOMKilled" else None

    cs = eventually(oom_reported, 60, what="an OOMKilled lastState")
    assert cs["lastState"]["terminated"]["exitCode"] == 137
    assert cs["restartCount"] >= 1
    eventually(lambda: ((_pod(cluster, "hog")["status"]["containerStatuses"][0]["state"].get("waiting") or {})
                      .get("reason") == "CrashLoopBackOff"), 60, what="CrashLoopBackOff")
    assert _pod(cluster, "hog")["status"]["qosClass"] == "Guaranteed"
    other = _pod(cluster, sleeper)["status"]
    assert other["containerStatuses"][0]["restartCount"] == 0 and other["phase"] == "Running"
    assert other["qosClass"] == "BestEffort"
    events = json.loads(cluster.kubectl("get", "events", "--field-selector", "involvedObject.name=hog", "-o",
                                        "json").stdout)["items"]
    assert any(e["reason"] == "OOMKilled" and e["type"] == "Warning" for e in events)
    cluster.kubectl("delete", "pod", "hog", "--wait=true", timeout=60)


def test_limits_in_the_container_cgroup_and_cleanup(cluster: Server) -> None:
    marker = "sleep 3599.5"
    cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "limited"},
                   "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                       {"name": "c", "image": "busybox",
                        "command": ["sh", "-c", f"setsid sh -c '{marker}' & {marker}"],
                        "resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "96Mi", "cpu": "1500m"}}}]}})
    cluster.kubectl("wait", "--for=condition=Ready", "pod/limited", "--timeout=60s", timeout=90)
    assert _pod(cluster, "limited")["status"]["qosClass"] == "Burstable"
    pid = _container_pid(cluster, "limited", marker)
    dirs = {c: d for c, d in _cgroup_dirs(pid).items() if "/nanokube-" in str(d)}  # the agent's, not others
    assert dirs
    if "memory" in dirs:  # cgroup v1
        assert (dirs["memory"] / "memory.limit_in_bytes").read_text().strip() == str(96 << 20)
        assert (dirs["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "150000"
        assert (dirs["cpu"] / "cpu.shares").read_text().strip() == "256"
    else:
        assert (dirs[""] / "memory.max").read_text().strip() == str(96 << 20)
        assert (dirs[""] / "cpu.max").read_text().split()[0] == "150000"
    escaped = eventually(lambda: [p for p in _pids_with(marker) if os.getsid(p) != os.getsid(pid)], 30,
                       what="the process that left the container's session")
    assert escaped
    cluster.kubectl("delete", "pod", "limited", "--wait=true", timeout=60)
    eventually(lambda: not _pids_with(marker), 20, what="every process of the container to be killed")
    eventually(lambda: not any(d.exists() for d in dirs.values()), 20, what="the container's cgroups to be removed")
    eventually(lambda: not any(d.parent.exists() for d in dirs.values()), 20, what="the pod's cgroups to be removed")


def _pids_with(marker: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    out.append(int(entry))
            except OSError:
                continue
    return out
