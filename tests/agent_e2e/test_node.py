"""The agent's Node as `kubectl get nodes -o wide` shows it, and its Lease."""

from __future__ import annotations

import os
import platform
import socket

from tests.agent_e2e.conftest import kubectl_json, loopback_args, table
from tests.polling import eventually


def os_image() -> str:
    for line in open("/etc/os-release").read().splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    raise AssertionError("no PRETTY_NAME in /etc/os-release")


def test_node_wide_columns_lease_and_capacity(make_server):
    srv = make_server(*loopback_args("--components", "agent"))
    rows = table(srv.kubectl("get", "nodes", "-o", "wide").stdout)
    assert len(rows) == 1
    node = rows[0]
    assert node["NAME"] == socket.gethostname()
    assert node["STATUS"] == "Ready"
    assert node["ROLES"] == "control-plane"
    assert node["VERSION"].startswith("v1.32.")
    assert node["INTERNAL-IP"] == "127.0.0.1" and node["EXTERNAL-IP"] == "<none>"
    assert node["OS-IMAGE"] == os_image()
    assert node["KERNEL-VERSION"] == platform.release()
    assert node["CONTAINER-RUNTIME"].startswith("nanokube://")
    obj = kubectl_json(srv, "get", "node", node["NAME"])
    assert obj["status"]["capacity"]["cpu"] == str(os.cpu_count())
    assert obj["status"]["allocatable"]["pods"] == "110"
    assert {a["type"]: a["address"] for a in obj["status"]["addresses"]} == {"InternalIP": "127.0.0.1",
                                                                          "Hostname": node["NAME"]}
    assert obj["metadata"]["labels"]["kubernetes.io/hostname"] == node["NAME"]
    lease = eventually(lambda: kubectl_json(srv, "get", "leases", "-n", "kube-node-lease")["items"], 10,
                       what="the node lease")
    assert lease[0]["metadata"]["name"] == node["NAME"]
    assert lease[0]["spec"]["holderIdentity"] == node["NAME"]
    assert "Kernel Version:" in srv.kubectl("describe", "node", node["NAME"]).stdout


def test_node_name_flag_and_roles_after_restart(make_server):
    srv = make_server(*loopback_args("--components", "agent", "--node-name", "worker-a"))
    srv.kubectl("label", "node", "worker-a", "node-role.kubernetes.io/control-plane-")
    assert table(srv.kubectl("get", "nodes").stdout)[0]["ROLES"] == "<none>"
    srv.stop()
    srv.start()  # the agent takes over the existing Node and puts its labels back
    rows = table(srv.kubectl("get", "nodes").stdout)
    assert [(r["NAME"], r["STATUS"], r["ROLES"]) for r in rows] == [("worker-a", "Ready", "control-plane")]
