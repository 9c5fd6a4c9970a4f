"""The issue's acceptance run, loopback mode with the real agent, a real mariadb and the real mysql client: the
article's headless Service in front of a 3-replica StatefulSet `db` (root password from the article's Secret).

db-0, db-1, db-2 start in order; each resolves as db-N.headless-svc.default.svc.cluster.local through the
cluster DNS; each keeps its own row in its own claim after `kubectl delete pod db-1`, after a server restart
and after scaling 3 -> 1 -> 3; a rolling update with partition 2 replaces only db-2.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest
from tests.article.test_article_loopback import MYSQL, listening, mysql
from tests.conftest import Server, start_server
from tests.explain.cluster import AddressPlan, pick_plan
from tests.polling import eventually

pytestmark = [pytest.mark.timeout(600),
              pytest.mark.skipif(not (MYSQL and shutil.which("mariadbd")),
                                 reason="mariadb-server / mariadb-client not installed")]
ARTICLE = Path(__file__).resolve().parents[2] / "examples" / "article"
FQDN = "{}.headless-svc.default.svc.cluster.local"

STATEFULSET = {
    "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
    "spec": {"serviceName": "headless-svc", "replicas": 3, "selector": {"matchLabels": {"app": "myapp"}},
             "template": {"metadata": {"labels": {"app": "myapp"}}, "spec": {
                 "terminationGracePeriodSeconds": 10,
                 "containers": [{"name": "mariadb", "image": "mariadb:latest",
                                 "env": [{"name": "MYSQL_ROOT_PASSWORD", "valueFrom": {"secretKeyRef": {
                                     "name": "mariadb-secret", "key": "root-password"}}}],
                                 "ports": [{"containerPort": 3306}],
                                 "readinessProbe": {"tcpSocket": {"port": 3306}, "periodSeconds": 1},
                                 "volumeMounts": [{"name": "data", "mountPath": "/var/lib/mysql"}]}]}},
             "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                 "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Server]:
    plan = pick_plan()
    srv = start_server(*plan.args())
    srv.plan = plan  # type: ignore[attr-defined]
    try:
        srv.kubectl("apply", "-f", str(ARTICLE / "mariadb-secret.yaml"), "-f", str(ARTICLE / "headless-svc.yaml"))
        yield srv
    finally:
        srv.stop()


def get(srv: Server, *what: str) -> dict:
    return json.loads(srv.kubectl("get", *what, "-o", "json").stdout)


def resolve(srv: Server, name: str) -> list[str]:
    plan: AddressPlan = srv.plan  # type: ignore[attr-defined]
    response = dns.query.udp(dns.message.make_query(name, "A"), plan.dns, timeout=2)
    return [rd.to_text() for rr in response.answer if rr.rdtype == dns.rdatatype.A for rd in rr]


def db_ip(srv: Server, pod: str) -> str:
    """db-N's address as the cluster DNS gives it, once mariadb answers there."""
    def answer() -> str | None:
        ips = resolve(srv, FQDN.format(pod))
        return ips[0] if len(ips) == 1 and listening(ips[0], 3306) else None
    return eventually(answer, timeout=120)


def row_of(srv: Server, pod: str) -> str:
    return mysql(srv, db_ip(srv, pod), query="select who from state.identity")


def uid(srv: Server, pod: str) -> str:
    return get(srv, "pod", pod)["metadata"]["uid"]


def wait_ready(srv: Server, replicas: int) -> None:
    eventually(lambda: (s := get(srv, "sts", "db")["status"]).get("readyReplicas") == replicas
               and s.get("replicas") == replicas, timeout=240)


def test_pods_start_in_order_and_resolve_through_the_headless_service(cluster):
    cluster.apply(STATEFULSET)
    wait_ready(cluster, 3)
    started = {p["metadata"]["name"]: p["metadata"]["creationTimestamp"] for p in get(cluster, "pods")["items"]}
    ready_at = {}
    for pod in get(cluster, "pods")["items"]:
        ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        ready_at[pod["metadata"]["name"]] = ready["lastTransitionTime"]
    assert ready_at["db-0"] <= started["db-1"] and ready_at["db-1"] <= started["db-2"]  # OrderedReady
    for n in range(3):
        ip = db_ip(cluster, f"db-{n}")
        assert ip == get(cluster, "pod", f"db-{n}")["status"]["podIP"]
        mysql(cluster, ip, query="create database state; create table state.identity (who varchar(16)); "
                                 f"insert into state.identity values ('db-{n}')")
    assert sorted(resolve(cluster, "headless-svc.default.svc.cluster.local")) == \
        sorted(db_ip(cluster, f"db-{n}") for n in range(3))
    claims = {c["metadata"]["name"]: c["status"]["phase"] for c in get(cluster, "pvc")["items"]}
    assert claims == {"data-db-0": "Bound", "data-db-1": "Bound", "data-db-2": "Bound"}


def test_deleted_pod_comes_back_with_its_own_data(cluster):
    before = uid(cluster, "db-1")
    cluster.kubectl("delete", "pod", "db-1")
    eventually(lambda: uid(cluster, "db-1") != before, timeout=60)
    wait_ready(cluster, 3)
    assert [row_of(cluster, f"db-{n}") for n in range(3)] == ["db-0", "db-1", "db-2"]


def test_server_restart_keeps_every_row(cluster):
    cluster.stop()
    cluster.start()
    wait_ready(cluster, 3)
    assert [row_of(cluster, f"db-{n}") for n in range(3)] == ["db-0", "db-1", "db-2"]


def test_scale_down_and_up_keeps_names_and_claims(cluster):
    cluster.kubectl("scale", "sts/db", "--replicas=1")
    eventually(lambda: [p["metadata"]["name"] for p in get(cluster, "pods")["items"]] == ["db-0"], timeout=120)
    assert {c["metadata"]["name"] for c in get(cluster, "pvc")["items"]} == {"data-db-0", "data-db-1", "data-db-2"}
    cluster.kubectl("scale", "sts/db", "--replicas=3")
    wait_ready(cluster, 3)
    assert [row_of(cluster, f"db-{n}") for n in range(3)] == ["db-0", "db-1", "db-2"]


def test_rolling_update_with_partition_two_replaces_only_db_2(cluster):
    uids = {n: uid(cluster, f"db-{n}") for n in range(3)}
    cluster.kubectl("patch", "sts/db", "--type=merge", "-p", json.dumps({"spec": {
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
        "template": {"metadata": {"annotations": {"example.com/rev": "2"}}}}}))
    status = eventually(lambda: (s := get(cluster, "sts", "db")["status"]).get("updatedReplicas") == 1
                        and s.get("readyReplicas") == 3 and s, timeout=180)
    assert status["currentRevision"] != status["updateRevision"]
    assert uid(cluster, "db-0") == uids[0] and uid(cluster, "db-1") == uids[1] and uid(cluster, "db-2") != uids[2]
    labels = {n: get(cluster, "pod", f"db-{n}")["metadata"]["labels"]["controller-revision-hash"] for n in range(3)}
    assert labels == {0: status["currentRevision"], 1: status["currentRevision"], 2: status["updateRevision"]}
    assert row_of(cluster, "db-2") == "db-2"
