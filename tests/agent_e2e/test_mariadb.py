"""The article's MariaDB (Secret + PVC + Deployment, applied as-is with kubectl) on a real nanokube server:
the claim is bound by local-path, the pod runs Debian's mariadb-server, a client reaches it at the pod IP with
the Secret's root password, and a row survives the pod's replacement and a server restart."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.agent_e2e.conftest import kubectl_json, loopback_args, pod_processes, table
from tests.conftest import REPO, Server, start_server
from tests.polling import eventually

pytestmark = pytest.mark.skipif(not (shutil.which("mariadbd") and shutil.which("mariadb")),
                                reason="needs Debian's mariadb-server and mariadb-client")

ARTICLE = REPO / "examples" / "article"
SECRET = yaml.safe_load((ARTICLE / "mariadb-secret.yaml").read_text())
PASSWORD = base64.b64decode(SECRET["data"]["root-password"]).decode()


def sql(ip: str, query: str, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mariadb", "--no-defaults", "--protocol=TCP", "-h", ip, "-P", "3306", "-uroot", "-N",
                           "-B", "--connect-timeout=2", "-e", query], capture_output=True, text=True, timeout=20,
                          env={**os.environ, "MYSQL_PWD": password})


def sql_when_up(ip: str, query: str, timeout: float = 45.0) -> str:
    """The first start initialises the data directory (a few seconds): retry until the server answers."""
    last: list[subprocess.CompletedProcess[str]] = []

    def attempt() -> bool:
        last[:] = [sql(ip, query)]
        return last[0].returncode == 0

    try:
        eventually(attempt, timeout, 0.2, what=f"mariadb at {ip}")
    except AssertionError as err:
        raise AssertionError(f"{err}: {last[0].stderr if last else ''}") from None
    return last[0].stdout


def live_pod(srv: Server, not_named: str = "") -> dict:
    """The Deployment's running pod (not being deleted, not ``not_named``) once it has an IP."""
    def find() -> dict | None:
        for pod in kubectl_json(srv, "get", "pods", "-l", "app=mariadb")["items"]:
            status = pod.get("status") or {}
            if pod["metadata"]["name"] != not_named and not pod["metadata"].get("deletionTimestamp") and \
                    status.get("phase") == "Running" and status.get("podIP"):
                return pod
        return None
    return eventually(find, 30, 0.1, what="a running mariadb pod")


@pytest.fixture(scope="module")
def article() -> Iterator[Server]:
    srv = start_server(*loopback_args())
    try:
        for name in ("mariadb-secret.yaml", "mariadb-pvc.yaml", "mariadb-deployment.yaml"):
            srv.kubectl("apply", "-f", str(ARTICLE / name))
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(srv.data_dir, ignore_errors=True)  # InnoDB files: about 100 MB


def test_claim_is_bound_by_local_path(article):
    def bound() -> dict | None:
        rows = table(article.kubectl("get", "pvc").stdout)
        return rows[0] if rows and rows[0]["STATUS"] == "Bound" else None

    row = eventually(bound, 15, what="mariadb-pvc Bound")
    assert row["NAME"] == "mariadb-pvc"
    assert row["VOLUME"].startswith("pvc-")
    assert (row["CAPACITY"], row["ACCESS MODES"], row["STORAGECLASS"]) == ("1Gi", "RWO", "local-path")
    pv = kubectl_json(article, "get", "pv", row["VOLUME"])
    directory = Path(pv["spec"]["hostPath"]["path"])
    assert directory.parent == article.data_dir / "storage" and directory.is_dir()


def test_client_connects_with_the_secret_password_and_writes_a_row(article):
    pod = live_pod(article)
    ip = pod["status"]["podIP"]
    assert ip.startswith("127.244.")
    version = sql_when_up(ip, "SELECT VERSION()")
    assert "MariaDB" in version and "deb" in version  # Debian's mariadb-server
    assert sql(ip, "SELECT 1", password="wrong").returncode != 0  # the password is really checked
    out = sql(ip, "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(40));"
                  "INSERT INTO shop.orders VALUES (1, 'article row'); SELECT item FROM shop.orders")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "article row\n"
    rows = table(article.kubectl("get", "pods", "-o", "wide").stdout)
    assert [(r["READY"], r["STATUS"], r["IP"]) for r in rows] == [("1/1", "Running", ip)]


def test_the_row_survives_the_pod_being_replaced(article):
    old = live_pod(article)
    article.kubectl("delete", "pod", old["metadata"]["name"], "--wait=false")
    new = live_pod(article, not_named=old["metadata"]["name"])
    assert new["status"]["podIP"] != old["status"]["podIP"]
    assert sql_when_up(new["status"]["podIP"], "SELECT item FROM shop.orders WHERE id = 1") == "article row\n"
    eventually(lambda: len(kubectl_json(article, "get", "pods")["items"]) == 1, 20, what="the old pod removed")


def test_the_row_survives_a_server_restart(article):
    before = live_pod(article)
    assert article.stop() == 0
    assert pod_processes(article.data_dir) == []  # stopping the server stopped mariadb
    article.start()
    pod = live_pod(article)
    assert pod["metadata"]["uid"] == before["metadata"]["uid"]  # the same pod object, started again
    assert pod["status"]["podIP"] == before["status"]["podIP"]  # at the address clients knew it by
    assert sql_when_up(pod["status"]["podIP"], "SELECT item FROM shop.orders WHERE id = 1") == "article row\n"
    rows = table(article.kubectl("get", "pvc").stdout)
    assert [(r["STATUS"], r["VOLUME"]) for r in rows] == [("Bound", f"pvc-{pvc_uid(article)}")]


def pvc_uid(srv: Server) -> str:
    return kubectl_json(srv, "get", "pvc", "mariadb-pvc")["metadata"]["uid"]


def test_the_password_never_shows(article):
    pod = live_pod(article)
    name = pod["metadata"]["name"]
    assert PASSWORD not in article.kubectl("logs", name).stdout
    assert PASSWORD not in article.kubectl("get", "pod", name, "-o", "yaml").stdout
    assert PASSWORD not in article.kubectl("describe", "pod", name).stdout
    assert PASSWORD not in article.kubectl("get", "events", "-A", "-o", "yaml").stdout
    for pid, cmdline in pod_processes(article.data_dir):
        assert PASSWORD not in cmdline, pid
    assert PASSWORD not in article.logs()
    # the Secret's value reaches the container only as its environment
    assert any(f"MYSQL_ROOT_PASSWORD={PASSWORD}".encode() in Path(f"/proc/{pid}/environ").read_bytes()
               for pid, _ in pod_processes(article.data_dir))


def test_deleting_the_deployment_leaves_no_process(article):
    assert pod_processes(article.data_dir)
    article.kubectl("delete", "deployment", "mariadb-deployment")
    eventually(lambda: not kubectl_json(article, "get", "pods")["items"], 20, what="pods gone")
    assert pod_processes(article.data_dir) == []
