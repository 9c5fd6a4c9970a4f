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
import sys

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
    for path in spec.get("tmpfs") or []:
        mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for source, target in spec.get("files") or []:
        target = os.path.realpath(target)
        ensure_file(target)
        mount(source, target, None, MS_BIND)
    for source, target, read_only in spec.get("mounts") or []:
        if os.path.isdir(source):
            os.makedirs(target, exist_ok=True)
        else:
            ensure_file(target)
        mount(source, target, None, MS_BIND | MS_REC)
        if read_only:
            mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)


def main():
    spec = json.loads(sys.argv[1])
    status_fd = spec.get("status_fd")
    try:
        if spec.get("namespaces", True):
            enter(spec)
        os.chdir(spec.get("cwd") or "/")
        argv = spec["argv"]
        os.execvpe(argv[0], argv, os.environ)
    except OSError as err:
        if isinstance(err, FileNotFoundError) and err.filename is None:
            text = f'exec: "{spec["argv"][0]}": executable file not found in $PATH'
        else:
            text = str(err)
        if status_fd is not None:
            os.write(status_fd, text.encode())
        else:
            print(text, file=sys.stderr)
        os._exit(128)


if __name__ == "__main__":
    main()
