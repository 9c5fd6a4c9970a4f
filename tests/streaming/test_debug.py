"""kubectl debug: an ephemeral container added through pods/ephemeralcontainers, attached with a terminal,
reported in ephemeralContainerStatuses and never restarted; --copy-to; the subresource's validation."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from tests.conftest import Server
from tests.polling import eventually
from tests.streaming.conftest import ATTACHING, kubectl_run, type_after


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) for a terminal")
def test_debug_it_attaches_a_shell(cluster: Server, sleeper: str) -> None:
    inner = f"kubectl --kubeconfig {cluster.kubeconfig} debug {sleeper} -it --image=busybox --target=main " \
            "--container=dbg1 -- sh"
    proc = subprocess.Popen(["script", "-qec", inner, "/dev/null"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    out = type_after(proc, ATTACHING, b"echo dbg-$((6*7))\nexit\n")
    assert b"dbg-42" in out, out
    pod = json.loads(cluster.kubectl("get", "pod", sleeper, "-o", "json").stdout)
    assert [c["name"] for c in pod["spec"]["ephemeralContainers"]] == ["dbg1"]
    assert pod["spec"]["ephemeralContainers"][0]["targetContainerName"] == "main"

    def terminated() -> bool:
        pod = json.loads(cluster.kubectl("get", "pod", sleeper, "-o", "json").stdout)
        statuses = pod["status"].get("ephemeralContainerStatuses") or []
        return bool(statuses) and "terminated" in statuses[0]["state"]

    eventually(terminated, 30, what="the debug container to be reported terminated")
    # A second debug container that runs to its end: the agent has synced this pod again since (starting and
    # reaping dbg2), and would have restarted dbg1 by then.
    done = kubectl_run(cluster, "debug", sleeper, "--image=busybox", "--container=dbg2", "--", "sh", "-c", "true")
    assert done.returncode == 0, done.stderr

    def dbg2_terminated() -> dict:
        pod = json.loads(cluster.kubectl("get", "pod", sleeper, "-o", "json").stdout)
        statuses = {s["name"]: s for s in pod["status"].get("ephemeralContainerStatuses") or []}
        return pod if "terminated" in (statuses.get("dbg2") or {}).get("state", {}) else {}

    pod = eventually(dbg2_terminated, 30, what="the second debug container to be reported terminated")
    first = pod["status"]["ephemeralContainerStatuses"][0]
    assert first["name"] == "dbg1" and "terminated" in first["state"], first
    assert first["restartCount"] == 0
    assert pod["status"]["phase"] == "Running"
    assert [s["name"] for s in pod["status"]["containerStatuses"]] == ["main"]


def test_ephemeral_containers_only_grow(cluster: Server, sleeper: str) -> None:
    patch = {"spec": {"ephemeralContainers": [{"name": "main", "image": "busybox"}]}}
    done = kubectl_run(cluster, "patch", "pod", sleeper, "--subresource=ephemeralcontainers", "-p", json.dumps(patch))
    assert done.returncode == 1 and b"spec.ephemeralContainers[0].name: Duplicate value" in done.stderr, done.stderr
    patch = {"spec": {"ephemeralContainers": [{"name": "withport", "image": "busybox",
                                                "ports": [{"containerPort": 80}]}]}}
    done = kubectl_run(cluster, "patch", "pod", sleeper, "--subresource=ephemeralcontainers", "-p", json.dumps(patch))
    assert b"cannot be set for an Ephemeral Container" in done.stderr, done.stderr
    done = kubectl_run(cluster, "debug", "ghost", "-it", "--image=busybox", "--", "sh")
    assert done.returncode == 1 and b'pods "ghost" not found' in done.stderr, done.stderr


def test_debug_copy_to(cluster: Server, sleeper: str) -> None:
    done = kubectl_run(cluster, "debug", sleeper, "--copy-to=sleeper-copy", "--image=busybox", "--container=dbg",
                       "-i", "--", "sh", "-c", "echo from-the-copy", input=b"")
    assert b"from-the-copy" in done.stdout, done.stderr
    pod = json.loads(cluster.kubectl("get", "pod", "sleeper-copy", "-o", "json").stdout)
    assert [c["name"] for c in pod["spec"]["containers"]] == ["main", "dbg"]
    cluster.kubectl("delete", "pod", "sleeper-copy", "--wait=false")
