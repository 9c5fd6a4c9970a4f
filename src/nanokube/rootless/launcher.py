"""Rootless mode's three processes: the parent on the host, a child that makes the namespaces, the node.

* P, the parent (the `nanokube server` the user started) stays in the host's namespaces. It takes the data
  dir's lock, binds the API and DNS host ports first (so a port in use fails at once), forks C, then only
  answers C's node with host sockets (host_ports.py) until the node is gone, and forwards SIGTERM/SIGINT.
* C unshares user + network + mount + PID + UTS + IPC namespaces (forked first thing: unshare(CLONE_NEWUSER)
  needs a single-threaded process) and gets its id maps: root inside is the user, and, when the user has
  subordinate ids (/etc/subuid, /etc/subgid) and newuidmap/newgidmap exist, ids 1.. inside are those (P runs
  the setuid helpers, as RootlessKit does), so pods can run as other users; otherwise C maps the one id
  itself. Then C forks N and waits for it.
* N is PID 1 of the new PID namespace and root in the user namespace, which owns its network and mount
  namespaces: it mounts its own /proc, /sys and a tmpfs on /run (for `ip netns`), then runs the server in
  netns mode, unchanged, with the port forwarder as one more component.

Both children die with their parent (PR_SET_PDEATHSIG), and when N, PID 1, dies the kernel kills every
process in its PID namespace; the namespaces go with their last process. Nothing is left on the host but
files in the data dir: `rootless/lock` and `rootless/child_pid` (N's host PID, for `nanokube enter`).
"""

from __future__ import annotations

import fcntl
import os
import pwd
import signal
import socket
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from nanokube.rootless import namespaces as ns
from nanokube.rootless.host_ports import HostPorts, bind_host_socket, serve_one

STATE_DIR = "rootless"
NAMESPACES = (ns.CLONE_NEWUSER | ns.CLONE_NEWNS | ns.CLONE_NEWNET | ns.CLONE_NEWPID | ns.CLONE_NEWUTS
              | ns.CLONE_NEWIPC)
# (proto, host, port) the parent binds before anything else starts
Prebound = dict[tuple[str, str, int], socket.socket]


def state_dir(data_dir: Path) -> Path:
    return data_dir / STATE_DIR


def run_rootless(data_dir: Path, early_ports: list[tuple[str, int]], run_node: Callable[[HostPorts], int]) -> int:
    """P: returns the exit code for `nanokube server`. `run_node` runs in N, given its host-port client."""
    state = state_dir(data_dir)
    state.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(state / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"nanokube: a rootless server already runs for {data_dir}", file=sys.stderr)
        return 1
    prebound: Prebound = {}
    try:
        for proto, port in early_ports:
            prebound[(proto, "127.0.0.1", port)] = bind_host_socket(proto, "127.0.0.1", port)
    except OSError as err:
        print(f"nanokube: port in use: 127.0.0.1:{port}/{proto} ({err.strerror})", file=sys.stderr)
        return 1
    (state / "child_pid").unlink(missing_ok=True)
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    maps_r, maps_w = os.pipe()  # C -> P: "unshared, map me"
    done_r, done_w = os.pipe()  # P -> C: b"1" (full map written) or b"0" (map yourself)
    me = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # C
        code = 1
        try:
            parent_end.close()
            os.close(maps_r)
            os.close(done_w)
            for sock in prebound.values():
                sock.close()
            code = _namespaces_child(me, state, child_end, run_node, maps_w, done_r)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    child_end.close()
    os.close(maps_w)
    os.close(done_r)
    _write_maps(pid, maps_r, done_w)
    _forward_signals(state, pid)
    try:
        while serve_one(parent_end, prebound):
            pass
    finally:
        for sock in prebound.values():
            sock.close()
        _, status = os.waitpid(pid, 0)
        (state / "child_pid").unlink(missing_ok=True)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 1


def _write_maps(child: int, maps_r: int, done_w: int) -> None:
    """P: once C has unshared, map its ids with newuidmap/newgidmap when the user has subordinate ids."""
    try:
        if os.read(maps_r, 1) != b"u":
            return  # C died before unsharing
        commands = ns.full_map_commands(child, os.getuid(), os.getgid(), pwd.getpwuid(os.getuid()).pw_name)
        ok = commands is not None
        for argv in commands or []:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            if result.returncode != 0:
                print(f"nanokube: rootless: {os.path.basename(argv[0])} failed ({result.stderr.strip()}); "
                      "mapping one id", file=sys.stderr)
                ok = False
                break
        os.write(done_w, b"1" if ok else b"0")
    finally:
        os.close(maps_r)
        os.close(done_w)


def _forward_signals(state: Path, child: int) -> None:
    def forward(signum: int, _frame: object) -> None:
        try:
            node = int((state / "child_pid").read_text())
            os.kill(node, signal.SIGTERM)
        except (OSError, ValueError):
            os.kill(child, signal.SIGKILL)  # no node yet: C's death takes the node (PDEATHSIG)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)


def _namespaces_child(parent: int, state: Path, control: socket.socket, run_node: Callable[[HostPorts], int],
                      maps_w: int, done_r: int) -> int:
    ns.set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent:
        return 1
    uid, gid = os.getuid(), os.getgid()
    ns.unshare(NAMESPACES)
    os.write(maps_w, b"u")
    os.close(maps_w)
    full = os.read(done_r, 1) == b"1"
    os.close(done_r)
    if not full:
        ns.write_single_map(uid, gid)
    os.setgid(0)  # the ids of root inside (with the full map the credentials are not switched by themselves)
    os.setuid(0)
    node = os.fork()
    if node == 0:  # N: PID 1 of the new PID namespace
        code = 1
        try:
            code = _node(control, run_node)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            os._exit(code)
    control.close()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # P forwards them to N; N stops everything
    tmp = state / "child_pid.tmp"
    tmp.write_text(f"{node}\n")
    tmp.replace(state / "child_pid")
    _, status = os.waitpid(node, 0)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 1


def _node(control: socket.socket, run_node: Callable[[HostPorts], int]) -> int:
    ns.set_parent_death_signal(signal.SIGKILL)
    ns.mount("none", "/", "", ns.MS_REC | ns.MS_PRIVATE)
    ns.mount("proc", "/proc", "proc", ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC)
    try:  # without it /sys/class/net shows the host's devices; `ip netns exec` remounts it anyway
        ns.mount("sysfs", "/sys", "sysfs", ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC)
    except OSError as err:
        print(f"nanokube: rootless: cannot mount /sys ({err.strerror}); carrying on", file=sys.stderr)
    # /run is the host's and not ours to write: a private tmpfs for `ip netns` (/run/netns) and the like
    ns.mount("tmpfs", "/run", "tmpfs", ns.MS_NOSUID | ns.MS_NODEV, "mode=755")
    os.makedirs("/run/netns", exist_ok=True)
    os.environ["PATH"] = f"{os.environ.get('PATH', '/usr/bin:/bin')}:{ns.SBIN_PATH}"
    ip = ns.ip_command() or "ip"
    subprocess.run([ip, "link", "set", "lo", "up"], check=True, timeout=30)
    return run_node(HostPorts(control))
