"""`nanokube enter [-- CMD...]`: a command inside a rootless server's node (user, mount, network, PID
namespaces), like `minikube ssh`. nsenter does the joining; `--preserve-credentials` because the user
namespace maps one id (setgroups is denied there)."""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
from pathlib import Path

from nanokube.rootless.launcher import state_dir
from nanokube.rootless.namespaces import SBIN_PATH
from nanokube.settings import default_data_dir


def enter_data_dir() -> Path:
    """The data dir of the server $KUBECONFIG belongs to, when it is a rootless one (so `nanokube enter` works
    right after the `export KUBECONFIG=...` line the server printed); else the default data dir."""
    kubeconfig = os.environ.get("KUBECONFIG", "")
    if kubeconfig and ":" not in kubeconfig and state_dir(Path(kubeconfig).parent).is_dir():
        return Path(kubeconfig).parent
    return default_data_dir()


def node_pid(data_dir: Path) -> int | None:
    """N's host PID when a rootless server of ours runs for `data_dir` (its lock is held), else None."""
    state = state_dir(data_dir)
    try:
        pid = int((state / "child_pid").read_text())
        fd = os.open(state / "lock", os.O_RDWR)
    except (OSError, ValueError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return None  # nobody holds it: a stale child_pid
    except BlockingIOError:
        pass
    finally:
        os.close(fd)
    try:
        uid = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                   if line.startswith("Uid:"))
        if uid != os.getuid() or os.stat(f"/proc/{pid}/ns/user").st_ino == os.stat("/proc/self/ns/user").st_ino:
            return None
    except (OSError, StopIteration):
        return None
    return pid


def run_enter(data_dir: Path, command: list[str]) -> int:
    if command[:1] == ["--"]:
        command = command[1:]
    pid = node_pid(data_dir)
    if pid is None:
        print(f"nanokube: no rootless server for {data_dir} (start one: nanokube server --network rootless)",
              file=sys.stderr)
        return 1
    nsenter = shutil.which("nsenter") or shutil.which("nsenter", path=SBIN_PATH)
    if nsenter is None:
        print("nanokube: enter needs nsenter (apt-get install util-linux)", file=sys.stderr)
        return 1
    argv = [nsenter, "--preserve-credentials", "-U", "-m", "-n", "-p", "-t", str(pid), f"--wd={os.getcwd()}", "--",
            *(command or [os.environ.get("SHELL") or "/bin/sh"])]
    env = {**os.environ, "KUBECONFIG": str(data_dir / "kubeconfig.yaml"), "NANOKUBE_ENTERED": "1",
           "PATH": f"{os.environ.get('PATH', '/usr/bin:/bin')}:{SBIN_PATH}"}
    if not command:
        env["PS1"] = "(nanokube) " + env.get("PS1", r"\u@\h:\w\$ ")
    os.execve(nsenter, argv, env)
    return 1  # not reached
