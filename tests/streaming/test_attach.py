"""attach, `kubectl run -i --rm` (piped input, a Service answer, exit codes, no pod left) and the Python
client's attach through stream(), against a loopback-mode server."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest
from tests.conftest import Server
from tests.loopback.conftest import echo_deployment, manifest, service
from tests.polling import eventually
from tests.streaming.conftest import ATTACHING, kubectl_run, type_after


def _pods(cluster: Server) -> list[str]:
    out = kubectl_run(cluster, "get", "pods", "-o", "jsonpath={.items[*].metadata.name}").stdout.decode()
    return out.split()


def test_run_rm_i_with_piped_input(cluster: Server) -> None:
    done = kubectl_run(cluster, "run", "piped", "--rm", "-i", "--image=busybox", "--restart=Never", "--",
                       "sh", "-c", "echo started; cat; echo done; exit 4", input=b"line one\nline two\n")
    out = done.stdout.decode()
    assert "started\nline one\nline two\ndone\n" in out, (out, done.stderr)
    assert done.returncode == 4, done.stderr
    eventually(lambda: "piped" not in _pods(cluster), 30, what="the pod to be deleted")


def test_run_rm_i_reaches_a_service(cluster: Server) -> None:
    cluster.apply(manifest(echo_deployment("web", 1), service("web", {"app": "web"},
                                                               [{"port": 80, "targetPort": 8080}])))
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s", timeout=90)
    ip = json.loads(cluster.kubectl("get", "svc", "web", "-o", "json").stdout)["spec"]["clusterIP"]
    done = kubectl_run(cluster, "run", "tmp", "--rm", "-i", "--image=busybox", "--restart=Never", "--",
                       "wget", "-qO-", f"http://{ip}:80/")
    assert done.returncode == 0, done.stderr
    answer = json.loads(next(line for line in done.stdout.decode().splitlines() if line.startswith("{")))
    assert answer["pod"].startswith("web-"), answer
    eventually(lambda: "tmp" not in _pods(cluster), 30, what="the pod to be deleted")


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) for a terminal")
def test_run_it_shell(cluster: Server) -> None:
    inner = f"kubectl --kubeconfig {cluster.kubeconfig} run shell --rm -it --image=busybox --restart=Never -- sh"
    proc = subprocess.Popen(["script", "-qec", inner, "/dev/null"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    out = type_after(proc, ATTACHING, b"echo in-$((6*7))\nexit 7\n")
    assert "in-42" in out.decode(errors="replace"), out
    assert proc.returncode == 7
    eventually(lambda: "shell" not in _pods(cluster), 30, what="the pod to be deleted")


def test_python_client_attach(cluster: Server) -> None:
    from kubernetes.stream import stream

    cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "catter"},
                   "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                       {"name": "c", "image": "busybox", "stdin": True,
                        "command": ["sh", "-c", "while read line; do echo got-$line; done"]}]}})
    cluster.kubectl("wait", "--for=condition=Ready", "pod/catter", "--timeout=60s", timeout=90)
    client, api_client = cluster.client()
    core = client.CoreV1Api(api_client)
    resp = stream(core.connect_get_namespaced_pod_attach, "catter", "default", stdin=True, stdout=True,
                  stderr=True, tty=False, _preload_content=False)
    try:
        resp.write_stdin("hello\n")
        seen = ""
        deadline = time.monotonic() + 30
        while "got-hello" not in seen and time.monotonic() < deadline:
            resp.update(timeout=1)
            seen += resp.read_stdout() or ""
        assert "got-hello" in seen
    finally:
        resp.close()
    # a second attach still reaches the same process (stdinOnce is not set); attach stays until interrupted
    proc = subprocess.Popen(["kubectl", "--kubeconfig", str(cluster.kubeconfig), "attach", "-i", "catter"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        out, _ = proc.communicate(b"again\n", timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    assert b"got-again" in out
