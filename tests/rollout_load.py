"""The scenario shared by the zero-failure rollout tests (loopback and netns) and bench/rollout_zero_downtime.py:
an echo Deployment behind a Service, a constant bounded load on the ClusterIP (tests/loadgen.py, new
connections and keep-alive), and `kubectl rollout restart`, `set image` and `set env` one after another."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOADGEN = Path(__file__).resolve().parent / "loadgen.py"
NAME = "zerodown"


def manifests(replicas: int = 2) -> list[dict[str, Any]]:
    labels = {"app": NAME}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": NAME},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels}, "spec": {
                "terminationGracePeriodSeconds": 15,
                "containers": [{"name": "echo", "image": "nanokube/echo",
                                "ports": [{"containerPort": 8080, "name": "http"}],
                                # only a pod that answers takes traffic, as with any real rollout
                                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                                                   "periodSeconds": 1}}]}}}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": NAME},
           "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
    return [deployment, svc]


def changes(round_no: int = 0) -> list[tuple[str, list[str]]]:
    """The three changes, each a real new revision in every round (another image tag, another value)."""
    return [("rollout restart", ["rollout", "restart", f"deployment/{NAME}"]),
            ("set image", ["set", "image", f"deployment/{NAME}", f"echo=nanokube/echo:v{round_no + 2}"]),
            ("set env", ["set", "env", f"deployment/{NAME}", f"ROLLOUT_MARK={round_no + 1}"])]


def start_load(prefix: list[str], cluster_ip: str, *, new: int = 2, keepalive: int = 2, pause: float = 0.005,
               max_seconds: float = 600) -> subprocess.Popen[str]:
    """The load generator (prefix: e.g. `ip netns exec NAME` to run it inside a namespace)."""
    proc = subprocess.Popen([*prefix, sys.executable, "-I", "-S", str(LOADGEN), cluster_ip, "80", "--new", str(new),
                             "--keepalive", str(keepalive), "--pause", str(pause), "--max-seconds", str(max_seconds)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().startswith("loadgen started")
    return proc


def stop_load(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    line = proc.stdout.readline()
    proc.wait(30)
    return json.loads(line)


def run_changes(kubectl: Callable[..., Any], drain_timeout: float = 60.0, round_no: int = 0) -> list[tuple[str, float]]:
    """Each change, then `rollout status`; returns (change, seconds to complete). Before the next change the old
    pods finish draining under load (they are gone)."""
    took = []
    for what, argv in changes(round_no):
        began = time.monotonic()
        kubectl(*argv)
        kubectl("rollout", "status", f"deployment/{NAME}", "--timeout=180s", timeout=200)
        took.append((what, time.monotonic() - began))
        wait_drained(kubectl, drain_timeout)
    return took


def wait_drained(kubectl: Callable[..., Any], timeout: float) -> None:
    """Until no pod of the Deployment is terminating any more."""
    deadline = time.monotonic() + timeout
    while True:
        pods = json.loads(kubectl("get", "pods", "-l", f"app={NAME}", "-o", "json").stdout)["items"]
        terminating = [p["metadata"]["name"] for p in pods if p["metadata"].get("deletionTimestamp")]
        if not terminating:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"pods still terminating after {timeout}s: {terminating}")
        time.sleep(0.2)
