"""Rootless mode vs root netns mode, side by side in one run: time to ready, and the proxy data path.

Run as root (it makes a throwaway user, removed at the end, and a fresh network namespace per server, so
nothing touches the host's network):

    python bench/rootless_bench.py [--rounds 3] [--seconds 5]

Per round, alternating the modes:
* time to ready: spawn `nanokube server` -> its `nanokube ready` line;
* data path: HTTP requests/s (wrk, 1 thread, 8 connections; keep-alive, and a new connection per request) to an echo pod through its NodePort
  from outside the node: netns mode's node IP (the kernel's nftables DNAT) against rootless mode's host
  port 127.0.0.1:<nodePort> (the server's forwarder: one Python splice per connection, then the same DNAT
  inside), plus rootless mode from inside (`nanokube enter`, the nftables path only).

Before/after in one run: `--baseline DIR` (another checkout, e.g. `git archive main | tar -x -C /tmp/base`)
installs that tree into a second venv and starts its servers too, alternating with this tree's in every round
(its netns-mode server runs from DIR/src). `--ready-only` measures time to ready only (no echo, no wrk).
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ECHO = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 1
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec: {containers: [{name: echo, image: nanokube/echo, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  type: NodePort
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
"""


def check_tools() -> None:
    missing = [t for t in ("wrk", "kubectl", "unshare", "runuser", "useradd") if shutil.which(t) is None]
    if missing:
        sys.exit(f"needs {', '.join(missing)} (apt-get install wrk kubectl util-linux passwd)")
    if os.geteuid() != 0:
        sys.exit("run as root: it makes a throwaway user and network namespaces")


def script(server: str, target: str, seconds: int, inside: str = "", ready_only: bool = False) -> str:
    """Start a server, wait for ready, apply the echo, measure, stop; prints @@ lines. `ready_only`: start and
    stop only (time to ready)."""
    start = textwrap.dedent(f"""\
        set -u
        DATA=$(mktemp -d /tmp/nkbench-XXXXXX)
        start=$(date +%s%N)
        {server} --data-dir $DATA > $DATA.out 2> $DATA.err &
        pid=$!
        for _ in $(seq 6000); do grep -q '^nanokube ready' $DATA.out && break; kill -0 $pid || exit 3; sleep 0.01; done
        echo "@@ready_ms $(( ($(date +%s%N) - start) / 1000000 ))"
        """)
    stop = "kill -TERM $pid; wait $pid\nrm -rf $DATA $DATA.out $DATA.err\n"
    if ready_only:
        return start + stop
    return start + textwrap.dedent(f"""\
        export KUBECONFIG=$DATA/kubeconfig.yaml
        echo '{ECHO}' | kubectl apply -f - > /dev/null
        kubectl wait --for=condition=Available deployment/echo --timeout=60s > /dev/null
        NODE=$(kubectl get nodes -o jsonpath='{{.items[0].status.addresses[0].address}}')
        for _ in $(seq 100); do curl -sf -o /dev/null http://{target}/ && break; sleep 0.1; done
        echo "@@outside $(wrk -t1 -c8 -d{seconds}s http://{target}/ | sed -n 's/^Requests\\/sec: *//p')"
        echo "@@outside_new $(wrk -t1 -c8 -d{seconds}s -H 'Connection: close' http://{target}/ | sed -n 's/^Requests\\/sec: *//p')"
        """) + inside + "\n" + stop


def run(argv: list[str]) -> str:
    proc = subprocess.run(["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "-", *argv],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def kill_user_processes(uid: int) -> None:
    """SIGKILL, by PID, whatever the throwaway user still runs."""
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.stat(f"/proc/{entry}").st_uid == uid:
                os.kill(int(entry), 9)
        except OSError:
            pass


def fields(out: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(r"^@@(\w+) ([\d.]+)$", out, re.M)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout to compare with")
    parser.add_argument("--ready-only", action="store_true", help="time to ready only")
    args = parser.parse_args()
    check_tools()
    name = f"nkbench{os.getpid() % 100000}"
    subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True)
    home = Path(pwd.getpwnam(name).pw_dir)
    trees = {"": REPO, **({"baseline ": args.baseline.resolve()} if args.baseline else {})}
    venvs: dict[str, Path] = {}
    try:
        for label, tree in trees.items():
            venv = venvs[label] = Path(tempfile.mkdtemp(prefix="nkbench-venv-"))
            os.chmod(venv, 0o755)
            subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", str(tree)], check=True)
        results: dict[str, list[dict[str, float]]] = {}
        print(f"load average at the start: {os.getloadavg()[0]:.2f} (2 CPUs)", flush=True)
        for i in range(args.rounds):
            for label in (list(trees) if i % 2 == 0 else list(trees)[::-1]):
                tree, venv = trees[label], venvs[label]
                root_server = f"env PYTHONPATH={tree / 'src'} {sys.executable} -m nanokube server --network netns"
                netns = fields(run(["bash", "-c", script(root_server, "$NODE:30080", args.seconds,
                                                         ready_only=args.ready_only)]))
                results.setdefault(f"{label}netns", []).append(netns)
                user_env = ["runuser", "-u", name, "--", "env", "-i", f"HOME={home}",
                            f"PATH={venv}/bin:/usr/bin:/bin", "bash", "-c"]
                inside = (f'echo "@@inside $(nanokube enter --data-dir $DATA -- wrk -t1 -c8 -d{args.seconds}s '
                          f'http://$NODE:30080/ | sed -n \'s/^Requests\\/sec: *//p\')"')
                rootless = fields(run([*user_env, script("nanokube server --network rootless", "127.0.0.1:30080",
                                                         args.seconds, inside, ready_only=args.ready_only)]))
                results.setdefault(f"{label}rootless", []).append(rootless)
                print(f"  round {i + 1} {label or 'this tree '}: netns {netns['ready_ms']:.0f} ms, rootless "
                      f"{rootless['ready_ms']:.0f} ms, load {os.getloadavg()[0]:.1f}", flush=True)
        med = {mode: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for mode, runs in results.items()}
        print(f"rounds={args.rounds} seconds={args.seconds}; load average at the end: {os.getloadavg()[0]:.2f}")
        for mode, runs in results.items():
            print(mode, runs)
        for label in trees:
            n, r = med[f"{label}netns"], med[f"{label}rootless"]
            print(f"{label}time to ready (median): netns {n['ready_ms']:.0f} ms, rootless {r['ready_ms']:.0f} ms")
            if args.ready_only:
                continue
            print(f"{label}keep-alive req/s via NodePort from outside the node: netns {n['outside']:.0f}, "
                  f"rootless {r['outside']:.0f} (ratio {r['outside'] / n['outside']:.2f}); "
                  f"rootless from inside {r['inside']:.0f} (ratio {r['inside'] / n['outside']:.2f})")
            print(f"{label}new connection per request, req/s: netns {n['outside_new']:.0f}, "
                  f"rootless {r['outside_new']:.0f} (ratio {r['outside_new'] / n['outside_new']:.2f})")
    finally:
        kill_user_processes(pwd.getpwnam(name).pw_uid)
        subprocess.run(["userdel", "-r", name], capture_output=True)
        for venv in venvs.values():
            shutil.rmtree(venv, ignore_errors=True)


if __name__ == "__main__":
    main()
