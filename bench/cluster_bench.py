"""`nanokube.Cluster` and the pytest fixture, measured as a test suite uses them.

  setup     `Cluster().start()` until it returns (the server printed `nanokube ready`), and `stop()`,
            N times one after the other: median / min / max
  module    a generated 20-test module, each test creating a Deployment + Service in its own namespace
            (`nanokube_namespace`), waiting until it is Available and fetching its URL; run by a real
            `pytest` in a subprocess: wall time, and the time pytest reports for the session fixture's setup
  parallel  K clusters started at once (threads), then each creates a Deployment + Service and answers
            through it: time until all are ready / all answered, and the RSS of each server's process tree

    PYTHONPATH=src python bench/cluster_bench.py [--runs 10] [--clusters 4] [--json out.json]

Before/after in one run: `--baseline DIR` (a source tree holding `nanokube/`, e.g. `git archive main src |
tar -x -C /tmp/base` then `--baseline /tmp/base/src`) runs the setup and parallel phases for both trees, each in
a fresh `python` with that tree on PYTHONPATH, alternating run by run. `--bytecode` adds each tree once more
with a warm bytecode cache (a temporary PYTHONPYCACHEPREFIX, PYTHONDONTWRITEBYTECODE unset), as an installed
copy runs: a machine with PYTHONDONTWRITEBYTECODE=1 and no `__pycache__` in the tree compiles every module of
nanokube at every start.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

from nanokube import Cluster

SERVER_ARGS = ["--dns-upstream", "127.0.0.1:9"]  # nothing leaves the machine
APP = [
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
     "spec": {"selector": {"matchLabels": {"app": "web"}},
              "template": {"metadata": {"labels": {"app": "web"}},
                           "spec": {"terminationGracePeriodSeconds": 2,
                                    "containers": [{"name": "web", "image": "nanokube/echo"}]}}}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
     "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}},
]
MODULE = '''
import json, time, urllib.request
import pytest

APP = {app!r}

@pytest.mark.parametrize("n", range({tests}))
def test_app(nanokube_cluster, nanokube_namespace, n):
    nanokube_cluster.apply(APP, namespace=nanokube_namespace)
    nanokube_cluster.wait("deployment", "web", "Available", namespace=nanokube_namespace)
    url = nanokube_cluster.url("web", 80, namespace=nanokube_namespace)
    deadline = time.monotonic() + 20
    while True:
        try:
            assert json.loads(urllib.request.urlopen(url, timeout=3).read())["namespace"] == nanokube_namespace
            return
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
'''


def fetch_until(url: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as reply:
                return json.loads(reply.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def tree_rss_kib(pid: int) -> int:
    """RSS of a process and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def raw_server_start() -> float:
    """The bare `python -m nanokube server` (same flags, own range) until it prints `nanokube ready`: what
    `Cluster.start()` adds to the server's own start-up is the difference."""
    from nanokube.testing.addresses import claim_loopback_plan

    claim = claim_loopback_plan()
    with tempfile.TemporaryDirectory(prefix="nanokube-bench-raw-") as data:
        began = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "nanokube", "server", "--data-dir", data,
                                 *claim.plan.server_args(), "--proxy-status-port", "0", *SERVER_ARGS],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(b"nanokube ready"):
                break
        took = time.monotonic() - began
        proc.terminate()
        proc.wait(30)
        proc.stdout.close()
    claim.release()
    return took


def tree_cpu_s(pid: int) -> float:
    """CPU time (user + system) a process, its children that already exited (certificate issuing) and its live
    descendants have used: load-independent, unlike wall time."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stats[int(entry)] = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            fields = stats[p]
            total += sum(int(f) for f in fields[11:15 if p == pid else 13]) / ticks
        todo.extend(child for child, fields in stats.items() if int(fields[1]) == p)
    return total


def bench_setup(runs: int) -> dict:
    """Cluster.start() and the bare server, alternately (so load drifts hit both alike)."""
    starts, stops, raws, cpus = [], [], [], []
    for _ in range(runs):
        began = time.monotonic()
        cluster = Cluster(args=SERVER_ARGS).start()
        starts.append(time.monotonic() - began)
        assert cluster._proc is not None
        cpus.append(tree_cpu_s(cluster._proc.pid))
        began = time.monotonic()
        cluster.stop()
        stops.append(time.monotonic() - began)
        raws.append(raw_server_start())
    return {"start_s": starts, "stop_s": stops, "raw_server_s": raws, "cpu_to_ready_s": cpus,
            "cpu_median_s": statistics.median(cpus),
            "start_median_s": statistics.median(starts), "stop_median_s": statistics.median(stops),
            "raw_median_s": statistics.median(raws)}


def bench_module(tests: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="nanokube-bench-") as tmp:
        Path(tmp, "test_generated.py").write_text(textwrap.dedent(MODULE.format(app=APP, tests=tests)))
        import importlib.metadata

        # registered through an installed entry point (pluggy looks at every distribution), else by -p
        registered = any(ep.group == "pytest11" and ep.value == "nanokube.testing.pytest_plugin"
                         for dist in importlib.metadata.distributions() for ep in dist.entry_points)
        plugin = [] if registered else ["-p", "nanokube.testing.pytest_plugin"]
        began = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin,
                               "--durations=0", "--durations-min=0", "--rootdir", tmp,
                               *[f"--nanokube-server-arg={a}" for a in SERVER_ARGS], tmp],
                              capture_output=True, text=True, cwd=tmp, timeout=900)
        wall = time.monotonic() - began
    if proc.returncode != 0:
        raise SystemExit(f"the generated module failed:\n{proc.stdout[-5000:]}\n{proc.stderr[-2000:]}")
    setups, calls = [], []
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].endswith("s") and parts[1] in ("setup", "call"):
            (setups if parts[1] == "setup" else calls).append(float(parts[0][:-1]))
    return {"tests": tests, "wall_s": wall, "first_setup_s": max(setups) if setups else None,
            "call_median_s": statistics.median(calls) if calls else None,
            "summary": proc.stdout.strip().splitlines()[-1]}


def bench_parallel(count: int) -> dict:
    clusters = [Cluster(args=SERVER_ARGS) for _ in range(count)]
    ready_at: list[float] = [0.0] * count
    answered_at: list[float] = [0.0] * count
    errors: list[BaseException] = []
    began = time.monotonic()

    def run(i: int) -> None:
        try:
            clusters[i].start()
            ready_at[i] = time.monotonic() - began
            clusters[i].apply(APP)
            clusters[i].wait("deployment", "web", "Available")
            fetch_until(clusters[i].url("web", 80))
            answered_at[i] = time.monotonic() - began
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        rss = [tree_rss_kib(c._proc.pid) / 1024 for c in clusters if c._proc is not None]
        octets = sorted(c.service_cidr for c in clusters)
    finally:
        for c in clusters:
            c.stop()
    return {"clusters": count, "all_ready_s": max(ready_at), "all_answered_s": max(answered_at),
            "ready_s": ready_at, "answered_s": answered_at, "rss_mib": rss, "service_cidrs": octets}


Variant = tuple[str, dict[str, str]]  # name, environment of its subprocesses


def variants(args: argparse.Namespace, cache_root: Path) -> list[Variant]:
    here = os.environ.get("PYTHONPATH", "")
    trees = [("branch", here)] + ([("baseline", str(args.baseline))] if args.baseline else [])
    out: list[Variant] = []
    for name, path in trees:
        env = dict(os.environ, PYTHONPATH=path)
        out.append((name, env))
        if args.bytecode:
            warm = dict(env, PYTHONPYCACHEPREFIX=str(cache_root / name))
            warm.pop("PYTHONDONTWRITEBYTECODE", None)
            out.append((f"{name}+pyc", warm))
    return out


def in_subprocess(env: dict[str, str], *argv: str) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([sys.executable, __file__, *argv, "--json", out.name], env=env, check=True,
                       stdout=subprocess.DEVNULL, timeout=1800)
        return json.loads(Path(out.name).read_text())


def compare(args: argparse.Namespace) -> dict:
    """Every variant's setup (alternating run by run) and parallel phases, each in its own interpreter."""
    with tempfile.TemporaryDirectory(prefix="nanokube-bench-pyc-") as cache:
        chosen = variants(args, Path(cache))
        for _, env in chosen:  # fills the bytecode caches (one start each, not counted)
            if "PYTHONPYCACHEPREFIX" in env:
                in_subprocess(env, "--only", "setup", "--runs", "1")
        setups: dict[str, list[dict]] = {name: [] for name, _ in chosen}
        for i in range(args.runs):
            for name, env in (chosen if i % 2 == 0 else chosen[::-1]):
                setups[name].append(in_subprocess(env, "--only", "setup", "--runs", "1")["setup"])
                print(f"  run {i + 1} {name}: start {setups[name][-1]['start_s'][0]:.2f} s, cpu "
                      f"{setups[name][-1]['cpu_to_ready_s'][0]:.2f} s, load {os.getloadavg()[0]:.1f}", flush=True)
        parallel: dict[str, dict] = {}
        if args.only in (None, "parallel"):
            for name, env in chosen:
                parallel[name] = in_subprocess(env, "--only", "parallel", "--clusters", str(args.clusters))["parallel"]
    out: dict = {}
    for name, _ in chosen:
        runs = setups[name]
        pick = {key: [r[key][0] for r in runs] for key in ("start_s", "stop_s", "raw_server_s", "cpu_to_ready_s")}
        out[name] = {"setup": pick, "parallel": parallel.get(name)}
        print(f"{name:13s} start median {statistics.median(pick['start_s']):.2f} s (min {min(pick['start_s']):.2f}, "
              f"max {max(pick['start_s']):.2f}); CPU to ready {statistics.median(pick['cpu_to_ready_s']):.2f} s; "
              f"bare server {statistics.median(pick['raw_server_s']):.2f} s; stop {statistics.median(pick['stop_s']):.2f} s"
              + (f"; {args.clusters} side by side: all ready {parallel[name]['all_ready_s']:.2f} s, all serving "
                 f"{parallel[name]['all_answered_s']:.2f} s, RSS "
                 f"{', '.join(f'{r:.0f}' for r in parallel[name]['rss_mib'])} MiB" if name in parallel else ""))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--tests", type=int, default=20)
    parser.add_argument("--clusters", type=int, default=4)
    parser.add_argument("--only", choices=["setup", "module", "parallel"], default=None)
    parser.add_argument("--baseline", type=Path, default=None, help="another source tree to compare with")
    parser.add_argument("--bytecode", action="store_true", help="also each tree with a warm bytecode cache")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    load = os.getloadavg()
    out: dict = {"loadavg_before": load}
    if args.baseline or args.bytecode:
        out["compare"] = compare(args)
        if args.only is None:
            args.only = "module"
    if args.only in (None, "setup") and "compare" not in out:
        out["setup"] = setup = bench_setup(args.runs)
        print(f"setup: start median {setup['start_median_s']:.2f} s (min {min(setup['start_s']):.2f}, max "
              f"{max(setup['start_s']):.2f}), stop median {setup['stop_median_s']:.2f} s; the bare server in the "
              f"same run: median {setup['raw_median_s']:.2f} s (min {min(setup['raw_server_s']):.2f}); CPU used by the server "
              f"until ready (load-independent): median {setup['cpu_median_s']:.2f} s; {args.runs} runs")
    if args.only in (None, "module"):
        out["module"] = module = bench_module(args.tests)
        print(f"module: {module['tests']} tests (Deployment + Service each) in {module['wall_s']:.1f} s wall "
              f"(pytest: {module['summary']}); session fixture setup {module['first_setup_s']:.2f} s, "
              f"median test {module['call_median_s']:.2f} s")
    if args.only in (None, "parallel") and "compare" not in out:
        out["parallel"] = par = bench_parallel(args.clusters)
        print(f"parallel: {par['clusters']} clusters side by side: all ready in {par['all_ready_s']:.2f} s, "
              f"all serving an app in {par['all_answered_s']:.2f} s; RSS per cluster "
              f"{', '.join(f'{r:.0f}' for r in par['rss_mib'])} MiB; service CIDRs {', '.join(par['service_cidrs'])}")
    out["loadavg_after"] = os.getloadavg()
    print(f"load average before {load[0]:.2f}, after {out['loadavg_after'][0]:.2f} (2 CPUs)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
