"""Finds a pod's processes that left its containers' process groups (setsid, daemonising) so that stopping the
pod kills them too, the way a container runtime's cgroup does.

A process belongs to a pod when it runs in the pod's network namespace (netns mode), or when its environment
carries the pod's NANOKUBE_POD_DIR (loopback mode: every container gets it and children inherit it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal


def _same_file(path: str, ident: tuple[int, int]) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == ident


def pod_processes(*, pod_dir: str | None = None, netns_path: str | None = None) -> list[int]:
    """Pids of every process marked as the pod's (never this process)."""
    marker = f"NANOKUBE_POD_DIR={pod_dir}\0".encode() if pod_dir else None
    netns_id = None
    if netns_path:
        with contextlib.suppress(OSError):
            st = os.stat(netns_path)
            netns_id = (st.st_dev, st.st_ino)
    if marker is None and netns_id is None:
        return []
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        if netns_id is not None and _same_file(f"/proc/{entry}/ns/net", netns_id):
            found.append(int(entry))
            continue
        if marker is not None:
            try:
                with open(f"/proc/{entry}/environ", "rb") as fh:
                    environ = fh.read()
            except OSError:
                continue
            if marker in environ:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


async def kill_pod_processes(*, pod_dir: str | None = None, netns_path: str | None = None,
                             wait: float = 1.0) -> int:
    """SIGKILL every process of the pod and wait (up to ``wait`` s) until they are gone; returns how many."""
    pids = await asyncio.to_thread(pod_processes, pod_dir=pod_dir, netns_path=netns_path)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while pids and loop.time() < deadline:
        pids = [pid for pid in pids if _alive(pid)]
        if pids:
            await asyncio.sleep(0.005)
    return len(pids)
