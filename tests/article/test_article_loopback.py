"""The article, walked through in loopback mode with the real kubectl, a real mariadb and the real mysql client.

Every Service type with a real client from the host: ClusterIP, NodePort <node IP>:31111, LoadBalancer
<EXTERNAL-IP>:3306 (mysql), ExternalName (a CNAME from the cluster DNS), headless (pod IPs and
pod-1.headless-svc...). Loopback mode cannot show "not reachable from outside the cluster": every address
is on the host's lo (netns mode shows that).
"""

from __future__ import annotations

import base64
import re
import shutil
import socket
import subprocess
from pathlib import Path

import dns.message
import dns.query
import pytest
from tests.conftest import Server, start_server
from tests.explain.cluster import pick_plan
from tests.polling import eventually

ARTICLE = Path(__file__).resolve().parents[2] / "examples" / "article"
# In the article's order; headless-pods.yaml (not in the article) gives headless-svc its pods.
MANIFESTS = [("mariadb-pvc.yaml", "persistentvolumeclaim/mariadb-pvc"),
             ("mariadb-secret.yaml", "secret/mariadb-secret"),
             ("mariadb-deployment.yaml", "deployment.apps/mariadb-deployment"),
             ("mariadb-service.yaml", "service/mariadb-service"),
             ("svc-nodeport-mariadb.yml", "service/svc-nodeport-mariadb"),
             ("svc-mariadb-loadbalancer.yml", "service/svc-mariadb-loadbalancer"),
             ("training-aurora-svc.yml", "service/training-aurora-svc"),
             ("headless-svc.yaml", "service/headless-svc")]
MYSQL = shutil.which("mysql") or shutil.which("mariadb")
needs_mariadb = pytest.mark.skipif(not (MYSQL and shutil.which("mariadbd")),
                                   reason="mariadb-server / mariadb-client not installed")


def columns(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def table(out: str) -> tuple[list[str], dict[str, list[str]]]:
    lines = out.splitlines()
    return columns(lines[0]), {columns(line)[0]: columns(line) for line in lines[1:]}


@pytest.fixture(scope="module")
def article():
    plan = pick_plan()
    srv = start_server(*plan.args())
    srv.plan = plan  # type: ignore[attr-defined]
    try:
        for name, created in MANIFESTS:
            assert srv.kubectl("apply", "-f", str(ARTICLE / name)).stdout.strip() == f"{created} created"
        pods = srv.kubectl("apply", "-f", str(ARTICLE / "headless-pods.yaml")).stdout.split()
        assert pods == ["pod/pod-1", "created", "pod/pod-2", "created"]
        srv.kubectl("wait", "--for=condition=Available", "deployment/mariadb-deployment", "--timeout=60s")
        srv.kubectl("wait", "--for=condition=Ready", "pod/pod-1", "pod/pod-2", "--timeout=30s")
        if MYSQL:
            # The article's Deployment has no readiness probe: Ready means started, not yet initialised.
            pod_ip = srv.kubectl("get", "pods", "-l", "app=mariadb", "-o", "jsonpath={.items[0].status.podIP}").stdout
            eventually(lambda: listening(pod_ip, 3306), timeout=60)
        yield srv
    finally:
        srv.stop()


def listening(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def password(srv: Server) -> str:
    data = srv.kubectl("get", "secret", "mariadb-secret", "-o", "jsonpath={.data.root-password}").stdout
    return base64.b64decode(data).decode()


def mysql(srv: Server, host: str, port: int = 3306, query: str = "select 1") -> str:
    proc = subprocess.run([MYSQL, "-h", host, "-P", str(port), "--protocol=TCP", "--connect-timeout=5", "-uroot",
                           f"-p{password(srv)}", "-N", "-B", "-e", query], capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, f"mysql -h {host} -P {port}: {proc.stderr}"
    return proc.stdout.strip()


def dns_answer(srv: Server, name: str, rdtype: str) -> list[str]:
    response = dns.query.udp(dns.message.make_query(name, rdtype), srv.plan.dns, timeout=2)  # type: ignore[attr-defined]
    return [f"{dns.rdatatype.to_text(rr.rdtype)} {rd.to_text()}" for rr in response.answer for rd in rr]


def service_field(srv: Server, name: str, path: str) -> str:
    return srv.kubectl("get", "svc", name, "-o", f"jsonpath={path}").stdout


def test_get_svc_prints_the_articles_columns(article):
    header, rows = table(article.kubectl("get", "svc").stdout)
    assert header == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    octet = article.plan.octet
    assert rows["kubernetes"][1:5] == ["ClusterIP", f"127.{octet}.0.1", "<none>", "443/TCP"]
    assert rows["mariadb-service"][1] == "ClusterIP" and rows["mariadb-service"][3:5] == ["<none>", "3306/TCP"]
    assert rows["svc-nodeport-mariadb"][4] == "3306:31111/TCP"
    lb = rows["svc-mariadb-loadbalancer"]
    assert lb[1] == "LoadBalancer" and lb[3].startswith(f"127.{octet + 2}.0.") and re.fullmatch(r"3306:\d+/TCP", lb[4])
    assert rows["training-aurora-svc"][1:4] == ["ExternalName", "<none>",
                                                "training-aurora.cluster-abc123.us-east-1.rds.amazonaws.com"]
    assert rows["headless-svc"][2] == "None"


def test_get_pods_and_wide_views(article):
    header, rows = table(article.kubectl("get", "pods").stdout)
    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    mariadb = [r for name, r in rows.items() if name.startswith("mariadb-deployment-")]
    assert len(mariadb) == 1 and mariadb[0][1:4] == ["1/1", "Running", "0"]
    assert re.fullmatch(r"mariadb-deployment-[a-z0-9]{8,10}-[a-z0-9]{5}", mariadb[0][0])
    header, rows = table(article.kubectl("get", "service/svc-nodeport-mariadb", "-o", "wide").stdout)
    assert header == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]
    assert rows["svc-nodeport-mariadb"][1] == "NodePort" and rows["svc-nodeport-mariadb"][-1] == "app=mariadb"
    header, rows = table(article.kubectl("get", "nodes", "-o", "wide").stdout)
    assert header[:7] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP"]
    (node,) = rows.values()
    assert node[1] == "Ready" and node[5] == article.plan.node_ip


@needs_mariadb
def test_clusterip_mysql(article):
    ip = service_field(article, "mariadb-service", "{.spec.clusterIP}")
    assert mysql(article, ip, query="select 1") == "1"
    assert dns_answer(article, "mariadb-service.default.svc.cluster.local", "A") == [f"A {ip}"]


@needs_mariadb
def test_nodeport_31111_on_the_node_address(article):
    assert mysql(article, article.plan.node_ip, 31111, "select 40+2") == "42"


@needs_mariadb
def test_loadbalancer_external_ip(article):
    ip = eventually(lambda: service_field(article, "svc-mariadb-loadbalancer", "{.status.loadBalancer.ingress[0].ip}"))
    assert mysql(article, ip, 3306, "select @@port") == "3306"


def first_lost_greeting(host: str, port: int, attempts: int = 100) -> int | None:
    """MySQL speaks first: the number of the first connection whose greeting never arrives (None: all came)."""
    for n in range(1, attempts + 1):
        with socket.create_connection((host, port), timeout=1) as sock:
            try:
                if not sock.recv(16):
                    return n
            except TimeoutError:
                return n
    return None


@needs_mariadb
def test_server_speaks_first_through_every_service_address(article):
    lb = service_field(article, "svc-mariadb-loadbalancer", "{.status.loadBalancer.ingress[0].ip}")
    cluster_ip = service_field(article, "mariadb-service", "{.spec.clusterIP}")
    lost = {addr: first_lost_greeting(*addr) for addr in [(cluster_ip, 3306), (article.plan.node_ip, 31111), (lb, 3306)]}
    assert all(n is None for n in lost.values()), f"greeting never arrived on connection number: {lost}"


def test_external_name_is_a_cname(article):
    fqdn = "training-aurora-svc.default.svc.cluster.local"
    assert dns_answer(article, fqdn, "CNAME") == ["CNAME training-aurora.cluster-abc123.us-east-1.rds.amazonaws.com."]
    # Point it at a name this test controls (another Service) and follow the CNAME to an address.
    article.kubectl("patch", "svc", "training-aurora-svc", "-p",
                    '{"spec":{"externalName":"mariadb-service.default.svc.cluster.local"}}')
    ip = service_field(article, "mariadb-service", "{.spec.clusterIP}")
    answers = eventually(lambda: (a := dns_answer(article, fqdn, "A")) and len(a) == 2 and a)
    assert answers == ["CNAME mariadb-service.default.svc.cluster.local.", f"A {ip}"]


def test_headless_gives_pod_ips(article):
    ips = {article.kubectl("get", "pod", p, "-o", "jsonpath={.status.podIP}").stdout for p in ("pod-1", "pod-2")}
    answers = dns_answer(article, "headless-svc.default.svc.cluster.local", "A")
    assert {a.removeprefix("A ") for a in answers} == ips and len(answers) == 2
    pod1 = article.kubectl("get", "pod", "pod-1", "-o", "jsonpath={.status.podIP}").stdout
    assert dns_answer(article, "pod-1.headless-svc.default.svc.cluster.local", "A") == [f"A {pod1}"]
    with socket.create_connection((pod1, 8080), timeout=2) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert b'"pod": "pod-1"' in sock.recv(4096)
