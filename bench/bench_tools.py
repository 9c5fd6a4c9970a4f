"""What a benchmark needs on this machine, checked before it starts anything.

A missing program stops the run at once with the Debian package that provides it, instead of a traceback
half-way through (a lab built, then "nothing listens on ..." because nginx never started).
"""

from __future__ import annotations

import os
import shutil
import sys

# program -> Debian package
PACKAGES = {
    "conntrack": "conntrack",
    "dnsmasq": "dnsmasq-base",
    "dnsperf": "dnsperf",
    "etcd": "etcd-server",
    "haproxy": "haproxy",
    "ip": "iproute2",
    "kubectl": "kubectl (https://kubernetes.io/docs/tasks/tools/)",
    "nft": "nftables",
    "nginx": "nginx-light",
    "unshare": "util-linux",
    "wrk": "wrk",
}
SBIN = ("/usr/sbin", "/sbin")


def which(program: str) -> str | None:
    """The program's path, also looking in the sbin directories a user's PATH may lack."""
    return shutil.which(program) or next((p for d in SBIN if os.access(p := f"{d}/{program}", os.X_OK)), None)


def require(*programs: str, root: str = "") -> None:
    """Exit with one line per missing program (and its package) if any is missing; `root` says why root is
    needed when the benchmark must run as root."""
    problems = []
    if root and os.geteuid() != 0:
        problems.append(f"run as root: {root}")
    missing = [p for p in dict.fromkeys(programs) if which(p) is None]
    for program in missing:
        problems.append(f"{program} not found: apt-get install -y {PACKAGES.get(program, program)}")
    if problems:
        print(f"{os.path.basename(sys.argv[0])}: cannot run", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        raise SystemExit(2)
