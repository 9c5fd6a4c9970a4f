"""The article in netns mode, inside a fresh network namespace: real kubectl, real mariadb, real mysql client.

Each Service type from where the article says it works: ClusterIP, NodePort <node IP>:31111 and
LoadBalancer <EXTERNAL-IP>:3306 from the host (the node) with mysql; ClusterIP from a pod by the Service's
short name (the pod's own resolv.conf); ExternalName as a CNAME; headless as pod IPs and pod-1.headless-svc.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare") or not shutil.which("mariadbd")
    or not shutil.which("mysql"), reason="needs root, nft, unshare, mariadb-server and mariadb-client")


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    work = tmp_path_factory.mktemp("netns-article")
    proc = subprocess.run(["unshare", "--net", sys.executable, str(HERE / "netns_walkthrough.py"), str(work)],
                          capture_output=True, text=True, timeout=300, cwd=HERE.parents[1])
    assert proc.returncode == 0, f"{proc.stderr[-3000:]}\nserver log:\n{(work / 'server.err').read_text()[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_server_runs_in_netns_mode_and_stops_clean(walk):
    assert "network=netns" in walk["ready"] and "dns=10.96.0.10:53" in walk["ready"]
    assert walk["exit"] == 0
    assert "nanokube" not in walk["nft_tables_left"]
    assert walk["links_left"] == 1  # only lo is left in the namespace


def test_every_manifest_created(walk):
    assert all(line.endswith(" created") for out in walk["applied"] for line in out.splitlines())


def test_get_svc_and_nodes(walk):
    assert walk["get_svc"].splitlines()[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert "3306:31111/TCP" in walk["get_svc"]
    header = walk["get_nodes"].splitlines()[0].split()
    assert header[:7] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP"]


def test_mysql_through_clusterip_nodeport_and_lb_reaches_the_pod(walk):
    # netns pods have their own UTS namespace: @@hostname is the MariaDB pod's name.
    assert walk["mysql"] == {"clusterip": walk["mariadb_pod"], "nodeport": walk["mariadb_pod"],
                             "lb": walk["mariadb_pod"]}


def test_clusterip_by_name_from_a_pod(walk):
    assert walk["client_pod_log"].splitlines()[-1].split("\t")[0] == walk["mariadb_pod"]


def test_headless_and_external_name_dns(walk):
    dig = walk["dig"]
    assert sorted(dig["headless-svc.default.svc.cluster.local"].split()) == sorted(walk["pod_ips"])
    assert dig["pod-1.headless-svc.default.svc.cluster.local"] == walk["pod_ips"][0]
    assert dig["training-aurora-svc.default.svc.cluster.local"] == \
        "training-aurora.cluster-abc123.us-east-1.rds.amazonaws.com."


def test_explain_sees_the_programmed_lb(walk):
    report = walk["explain"]
    assert report["verdict"]["code"] == "reachable", report
    assert report["proxy"].get("mode") == "nftables" and report["proxy"]["programmed"]
