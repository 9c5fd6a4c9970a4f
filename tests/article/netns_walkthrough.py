"""The article in netns mode, run by test_article_netns.py inside a fresh network namespace (`unshare --net`).

Starts `nanokube server` (netns mode), walks the article with kubectl, mysql and a DNS client, and prints one
JSON object of what it saw on the last line of stdout. Usage: python netns_walkthrough.py WORKDIR
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

ARTICLE = Path(__file__).resolve().parents[2] / "examples" / "article"
MANIFESTS = ["mariadb-pvc.yaml", "mariadb-secret.yaml", "mariadb-deployment.yaml", "mariadb-service.yaml",
             "svc-nodeport-mariadb.yml", "svc-mariadb-loadbalancer.yml", "training-aurora-svc.yml",
             "headless-svc.yaml", "headless-pods.yaml"]


def sh(*args: str, check: bool = True, timeout: float = 60) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


def until(check, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {check}")
        time.sleep(0.1)
    return value


def listening(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def main(work: Path) -> dict:
    sh("ip", "link", "set", "lo", "up")
    data = work / "data"
    out = open(work / "server.out", "w")
    server = subprocess.Popen([sys.executable, "-m", "nanokube", "server", "--data-dir", str(data)], stdout=out,
                              stderr=open(work / "server.err", "w"), start_new_session=True)
    seen: dict = {}
    try:
        until(lambda: "nanokube ready" in (work / "server.out").read_text(), 30)
        seen["ready"] = (work / "server.out").read_text().strip()
        kubectl = ["kubectl", "--kubeconfig", str(data / "kubeconfig.yaml")]
        seen["applied"] = [sh(*kubectl, "apply", "-f", str(ARTICLE / m)) for m in MANIFESTS]
        sh(*kubectl, "wait", "--for=condition=Available", "deployment/mariadb-deployment", "--timeout=60s")
        sh(*kubectl, "wait", "--for=condition=Ready", "pod/pod-1", "pod/pod-2", "--timeout=60s")
        pod_ip = sh(*kubectl, "get", "pods", "-l", "app=mariadb", "-o", "jsonpath={.items[0].status.podIP}")
        until(lambda: listening(pod_ip, 3306), 60)
        seen["get_svc"] = sh(*kubectl, "get", "svc")
        seen["get_nodes"] = sh(*kubectl, "get", "nodes", "-o", "wide")
        password = sh(*kubectl, "get", "secret", "mariadb-secret", "-o", "jsonpath={.data.root-password}")
        pw = base64.b64decode(password).decode()

        def mysql(host: str, port: int) -> str:
            return sh("mysql", "-h", host, "-P", str(port), "--protocol=TCP", "--connect-timeout=5", "-uroot",
                      f"-p{pw}", "-N", "-B", "-e", "select @@hostname", check=False) or "FAILED"

        cluster_ip = sh(*kubectl, "get", "svc", "mariadb-service", "-o", "jsonpath={.spec.clusterIP}")
        node_ip = sh(*kubectl, "get", "nodes", "-o", "jsonpath={.items[0].status.addresses[0].address}")
        lb_ip = sh(*kubectl, "get", "svc", "svc-mariadb-loadbalancer", "-o",
                   "jsonpath={.status.loadBalancer.ingress[0].ip}")
        seen["mysql"] = {"clusterip": mysql(cluster_ip, 3306), "nodeport": mysql(node_ip, 31111),
                         "lb": mysql(lb_ip, 3306)}
        seen["mariadb_pod"] = sh(*kubectl, "get", "pods", "-l", "app=mariadb", "-o", "jsonpath={.items[0].metadata.name}")
        sh(*kubectl, "apply", "-f", str(ARTICLE / "extra" / "mysql-client.yaml"))
        sh(*kubectl, "wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/mysql-client", "--timeout=60s",
           check=False)
        seen["client_pod_log"] = sh(*kubectl, "logs", "mysql-client", check=False)
        dns = "10.96.0.10"
        seen["dig"] = {name: sh("dig", "+short", f"@{dns}", name, rtype) for name, rtype in [
            ("headless-svc.default.svc.cluster.local", "A"), ("pod-1.headless-svc.default.svc.cluster.local", "A"),
            ("training-aurora-svc.default.svc.cluster.local", "CNAME")]}
        seen["pod_ips"] = sh(*kubectl, "get", "pod", "pod-1", "pod-2", "-o", "jsonpath={.items[*].status.podIP}").split()
        explain = subprocess.run([sys.executable, "-m", "nanokube", "explain", "service", "svc-mariadb-loadbalancer",
                                  "-o", "json", "--kubeconfig", str(data / "kubeconfig.yaml")],
                                 capture_output=True, text=True, timeout=60)
        seen["explain"] = json.loads(explain.stdout) if explain.stdout else {"stderr": explain.stderr}
    finally:
        server.terminate()
        try:
            seen["exit"] = server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            seen["exit"] = "killed"
    seen["nft_tables_left"] = sh("nft", "list", "tables", check=False)
    seen["links_left"] = sh("ip", "-o", "link", "show", check=False).count("\n") + 1
    return seen


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
