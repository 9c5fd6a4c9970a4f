"""Helpers for the node agent's end-to-end tests: a real `nanokube server` in loopback mode, driven by kubectl.

Each server gets its own pod range (127.244.N.0/24) and runs only controllers + agent, so these tests can run
next to other servers on the same machine (no shared ClusterIPs, DNS address or pod IPs).
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def loopback_args(*extra: str) -> list[str]:
    pod_cidr = f"127.244.{random.randint(100, 250)}.0/24"
    return ["--network", "loopback", "--components", "controllers,agent", "--pod-cidr", pod_cidr, *extra]


def kubectl_json(srv: Any, *args: str) -> Any:
    return json.loads(srv.kubectl(*args, "-o", "json").stdout)


def table(text: str) -> list[dict[str, str]]:
    """kubectl's table output as rows keyed by header; a column starts where its header starts (headers such
    as "ACCESS MODES" hold single spaces, columns are padded by at least three)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = lines[0]
    found = list(re.finditer(r"\S+(?: \S+)*", header))
    starts = [m.start() for m in found]
    names = [m.group() for m in found]
    rows = []
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        rows.append(dict(zip(names, cells, strict=True)))
    return rows


def pod_processes(data_dir: Path, uid: str = "") -> list[tuple[int, str]]:
    """Processes that belong to pods (or the pod ``uid``) of the server using ``data_dir``: the agent gives every
    loopback-mode container NANOKUBE_POD_DIR=<data dir>/pods/<uid> (inherited by its children), and mariadbd's
    command line names its data directory under <data dir>/storage."""
    marker_env = f"NANOKUBE_POD_DIR={data_dir}/pods/{uid}".encode()
    marker_cmd = f"{data_dir}/storage/".encode() if not uid else marker_env
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except OSError:
            continue
        if marker_env in environ or marker_cmd in cmdline:
            found.append((int(entry), cmdline.replace(b"\0", b" ").decode(errors="replace")[:200]))
    return found
