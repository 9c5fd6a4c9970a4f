"""Pods must not hold the cluster's keys (issue 14), loopback mode: pods are processes of the server's user;
run by root, runAsUser/runAsGroup/supplementalGroups are honoured (so a pod cannot read the 0600 token or the
0700 data dir); run by anyone else, values it cannot honour are refused with a clear status. The token is
never in a pod's environment or working directory."""

from __future__ import annotations

import os
import time

import pytest
from tests.agent_e2e.conftest import kubectl_json, loopback_args
from tests.conftest import Server

from nanokube.agent.envvars import ContainerConfigError
from nanokube.agent.security import resolve


def report_pod(name: str, data_dir: str, pod_sc: dict) -> dict:
    script = (f'echo "id: $(id -u) $(id -g) $(id -G)"; echo "cwd: $(pwd)"; '
              f'if cat {data_dir}/token >/dev/null 2>&1; then echo "token: readable"; else echo "token: no"; fi; '
              'echo "done: yes"; exec sleep 3600')
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "terminationGracePeriodSeconds": 1, "securityContext": pod_sc,
        "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", script]}]}}


def logs_of(srv: Server, name: str) -> dict[str, str]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = srv.kubectl("logs", name, check=False).stdout
        if "done: yes" in out:
            return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
        time.sleep(0.2)
    raise AssertionError(srv.kubectl("describe", "pod", name, check=False).stdout[-1500:] + srv.logs()[-3000:])


@pytest.mark.skipif(os.geteuid() != 0, reason="runAsUser needs a server run by root")
def test_run_as_user_keeps_a_pod_away_from_the_token(make_server) -> None:
    srv: Server = make_server(*loopback_args())
    srv.apply(report_pod("asuser", str(srv.data_dir), {"runAsUser": 1000, "runAsGroup": 3000,
                                                        "supplementalGroups": [4000]}))
    r = logs_of(srv, "asuser")
    assert r["id"].split()[:2] == ["1000", "3000"] and "4000" in r["id"].split()
    assert r["token"] == "no"
    srv.apply(report_pod("asroot", str(srv.data_dir), {}))
    r = logs_of(srv, "asroot")
    assert r["cwd"] == "/" and not r["cwd"].startswith(str(srv.data_dir))
    token = srv.token
    for proc_env in pod_environments(srv):
        assert token.encode() not in proc_env
    srv.apply(report_pod("nonroot", str(srv.data_dir), {"runAsNonRoot": True}))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pod = kubectl_json(srv, "get", "pod", "nonroot")
        statuses = pod.get("status", {}).get("containerStatuses") or []
        waiting = (statuses[0].get("state") or {}).get("waiting") or {} if statuses else {}
        if waiting.get("reason") == "CreateContainerConfigError":
            break
        time.sleep(0.2)
    assert "container has runAsNonRoot and image will run as root" in waiting["message"]


def pod_environments(srv: Server) -> list[bytes]:
    marker = f"NANOKUBE_POD_DIR={srv.data_dir}/pods/".encode()
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as fh:
                    env = fh.read()
            except OSError:
                continue
            if marker in env:
                out.append(env)
    assert out
    return out


POD = {"metadata": {"name": "p", "namespace": "default", "uid": "u1"}, "spec": {}}


def test_a_server_without_privileges_refuses_what_it_cannot_honour() -> None:
    me = os.getuid() + 1 if os.getuid() == 0 else os.getuid()
    with pytest.raises(ContainerConfigError, match="runAsUser 4242 cannot be honoured"):
        resolve({**POD, "spec": {"securityContext": {"runAsUser": 4242}}}, {"name": "c"}, agent_uid=me,
                namespaced=False)
    with pytest.raises(ContainerConfigError, match="runAsGroup 4242 cannot be honoured"):
        resolve(POD, {"name": "c", "securityContext": {"runAsGroup": 4242}}, agent_uid=me, namespaced=False)
    with pytest.raises(ContainerConfigError, match=r"container's runAsUser breaks non-root policy \(pod: "
                                                   r"\"p_default\(u1\)\", container: c\)"):
        resolve(POD, {"name": "c", "securityContext": {"runAsUser": 0, "runAsNonRoot": True}}, agent_uid=0,
                namespaced=True)
    same = resolve(POD, {"name": "c", "securityContext": {"runAsUser": os.getuid()}}, agent_uid=me,
                   namespaced=False)
    assert same.uid == os.getuid()
