"""The kernel calls rootless mode needs, through ctypes (Python 3.11 has no os.unshare/os.setns).

unshare(CLONE_NEWUSER) needs a single-threaded caller, so everything here runs in freshly forked children
before any thread or event loop exists.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8
MS_REC, MS_PRIVATE = 0x4000, 0x40000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def set_parent_death_signal(sig: int) -> None:
    _check(_libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str = "") -> None:
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                       data.encode() if data else None), f"mount {fstype or source} on {target}")


def write_single_map(uid: int, gid: int) -> None:
    """Map root inside to the user outside (one id each); setgroups must be denied before a gid map."""
    Path("/proc/self/uid_map").write_text(f"0 {uid} 1\n")
    Path("/proc/self/setgroups").write_text("deny\n")
    Path("/proc/self/gid_map").write_text(f"0 {gid} 1\n")


def subordinate_range(kind: str, user: str, uid: int) -> tuple[int, int] | None:
    """(start, count) of the user's first range in /etc/subuid or /etc/subgid (by name or number)."""
    try:
        lines = Path(f"/etc/sub{kind}").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in (user, str(uid)) and parts[1].isdigit() and parts[2].isdigit():
            return int(parts[1]), int(parts[2])
    return None


def full_map_commands(pid: int, uid: int, gid: int, user: str) -> list[list[str]] | None:
    """newuidmap/newgidmap argv mapping 0 -> the user and 1.. -> the user's subordinate ids (RootlessKit's
    layout), or None when they cannot be used (no uidmap package, no ranges, or NANOKUBE_ROOTLESS_IDMAP=single)."""
    if os.environ.get("NANOKUBE_ROOTLESS_IDMAP", "") == "single":
        return None
    tools = {kind: shutil.which(f"new{kind}map") or shutil.which(f"new{kind}map", path=SBIN_PATH)
             for kind in ("uid", "gid")}
    ranges = {"uid": subordinate_range("uid", user, uid), "gid": subordinate_range("gid", user, uid)}
    if not all(tools.values()) or not all(ranges.values()):
        return None
    out = []
    for kind, own in (("uid", uid), ("gid", gid)):
        start, count = ranges[kind]  # type: ignore[misc]
        out.append([tools[kind], str(pid), "0", str(own), "1", "1", str(start), str(count)])  # type: ignore[list-item]
    return out


def userns_unavailable_reason() -> str:
    """"" when this user can make a user namespace that owns a network namespace with a bridge in it (the
    real operation: Ubuntu's AppArmor restriction lets unshare succeed with no capabilities); else why not."""
    if os.environ.get("NANOKUBE_USERNS", "") == "off":
        return "NANOKUBE_USERNS=off"
    for path, name in (("/proc/sys/user/max_user_namespaces", "user.max_user_namespaces"),
                       ("/proc/sys/kernel/unprivileged_userns_clone", "kernel.unprivileged_userns_clone")):
        try:
            if Path(path).read_text().strip() == "0":
                return f"{name}=0"
        except OSError:
            pass
    unshare_bin, ip_bin = shutil.which("unshare"), ip_command()
    if not unshare_bin or not ip_bin:
        return "needs unshare (util-linux) and ip (iproute2)"
    try:
        probe = subprocess.run([unshare_bin, "--user", "--map-root-user", "--net", ip_bin, "link", "add", "nkprobe0",
                                "type", "bridge"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"user namespace probe failed: {err}"
    if probe.returncode != 0:
        return f"user namespace probe failed: {(probe.stderr.strip().splitlines() or ['?'])[-1]}"
    return ""


SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin"


def ip_command() -> str | None:
    return shutil.which("ip") or shutil.which("ip", path=SBIN_PATH)
