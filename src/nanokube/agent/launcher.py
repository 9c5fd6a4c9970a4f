"""Starts one container process inside its pod's namespaces, then execs the program.

Run as ``python -I -S launcher.py '<json spec>'`` (stdlib only, so it starts in a few milliseconds).
Spec keys: netns (path of the pod's network namespace or null), hostname, domainname, tmpfs (paths),
files (bind mounts of single files: [source, target]), mounts ([source, target, readOnly]), cwd, argv,
status_fd (a pipe: closed on exec, or carries the error text when the program cannot be started).
The environment is the container's environment (it never travels on the command line).
"""

import ctypes
import json
import os
import stat
import sys
import warnings  # noqa: F401  os.execvpe imports it: load it while the stdlib is still readable (see become)

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

libc = ctypes.CDLL(None, use_errno=True)


def check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source, target, fstype, flags, data=None):
    check(libc.mount(source.encode() if source else None, target.encode(), fstype.encode() if fstype else None,
                     flags, data.encode() if data else None), f"mount {target}")


def ensure_file(path):
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "a").close()


def enter(spec):
    if spec.get("netns"):
        fd = os.open(spec["netns"], os.O_RDONLY)
        check(libc.setns(fd, CLONE_NEWNET), "setns net")
        os.close(fd)
    check(libc.unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC), "unshare")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    if spec.get("hostname"):
        name = spec["hostname"].encode()
        check(libc.sethostname(name, len(name)), "sethostname")
    if spec.get("domainname"):
        name = spec["domainname"].encode()
        check(libc.setdomainname(name, len(name)), "setdomainname")
    if spec.get("netns"):
        try:  # /sys/class/net of the pod's own network namespace
            mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV)
        except OSError:
            pass
    # sources may live under a path the private tmpfs hides (a data dir in /tmp): hold them open first
    files = [(os.open(src, os.O_PATH), target) for src, target in spec.get("files") or []]
    mounts = [(os.open(src, os.O_PATH), target, ro) for src, target, ro in spec.get("mounts") or []]
    for path in spec.get("tmpfs") or []:
        mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for fd, target in files:
        target = os.path.realpath(target)
        ensure_file(target)
        mount(f"/proc/self/fd/{fd}", target, None, MS_BIND)
        os.close(fd)
    for fd, target, read_only in mounts:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.makedirs(target, exist_ok=True)
        else:
            ensure_file(target)
        mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)
        os.close(fd)
        if read_only:
            mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    if (spec.get("security") or {}).get("read_only_root"):
        # Last, since a bind takes its source mount's flags: the flag of this namespace's copy of the root
        # mount only (MS_BIND: per mount, not the filesystem); the tmpfs and volumes above stay writable.
        mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY)

PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
CAPABILITY_VERSION_3 = 0x20080522


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def last_capability():
    try:
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            return int(fh.read())
    except OSError:
        return 40


def become(security):
    """runc's order: capability bounding set, groups, gid, uid, then the capability sets and no_new_privs."""
    caps = security.get("capabilities")
    if caps is not None:
        kept = set(caps)
        for cap in range(last_capability() + 1):
            if cap not in kept:
                check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"dropping capability {cap}")
    if security.get("gid") is not None or security.get("uid") is not None or security.get("groups"):
        os.setgroups(list(security.get("groups") or []))
    if security.get("gid") is not None:
        os.setgid(security["gid"])
    if security.get("uid") is not None:
        os.setuid(security["uid"])  # a non-root uid loses every capability here
    if caps is not None and os.getuid() == 0:
        mask = 0
        for cap in caps:
            mask |= 1 << cap
        header = CapHeader(CAPABILITY_VERSION_3, 0)
        data = (CapData * 2)(CapData(mask & 0xFFFFFFFF, mask & 0xFFFFFFFF, mask & 0xFFFFFFFF),
                             CapData(mask >> 32, mask >> 32, mask >> 32))
        check(libc.capset(ctypes.byref(header), data), "capset")
    if security.get("no_new_privs"):
        check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def main():
    spec = json.loads(sys.argv[1])
    status_fd = spec.get("status_fd")
    if status_fd is not None:
        os.set_inheritable(status_fd, False)  # closes on exec: that is the "started" signal
    try:
        if spec.get("namespaces", True):
            enter(spec)
        cwd = spec.get("cwd") or "/"
        try:
            os.chdir(cwd)
        except OSError:
            raise OSError(f'chdir to cwd ("{cwd}") set in config.json failed: no such file or directory') from None
        become(spec.get("security") or {})
        argv = spec["argv"]
        try:
            os.execvpe(argv[0], argv, os.environ)
        except FileNotFoundError:
            raise OSError(f'exec: "{argv[0]}": executable file not found in $PATH') from None
    except OSError as err:
        text = err.args[0] if len(err.args) == 1 else str(err)
        if status_fd is not None:
            os.write(status_fd, str(text).encode())
        else:
            print(text, file=sys.stderr)
        os._exit(128)

if __name__ == "__main__":
    main()
