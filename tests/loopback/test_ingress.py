"""The built-in Ingress controller in loopback mode: nginx behind the controller's LoadBalancer Service routes
by host and path straight to the pods; the default backend answers 404; other classes are ignored."""

from __future__ import annotations

import json
import subprocess

import pytest
from tests.conftest import Server
from tests.loopback.conftest import echo_deployment, kubectl_json, service
from tests.polling import eventually

pytestmark = pytest.mark.timeout(300)


def curl(url: str, address: str, *, port: int = 80, extra: tuple[str, ...] = ()) -> tuple[int, str]:
    host = url.split("/")[2]
    proc = subprocess.run(["curl", "-sS", "--max-time", "5", "--resolve", f"{host}:{port}:{address}",
                           "-o", "-", "-w", "\n%{http_code}", *extra, url],
                          capture_output=True, text=True, timeout=20)
    body, _, code = proc.stdout.rpartition("\n")
    return int(code or 0), body if int(code or 0) else proc.stderr  # curl's own error when nothing was answered


def ingress(name: str, rules: list[dict], **spec: object) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
            "spec": {"rules": rules, **spec}}


def rule(host: str, path: str, svc: str, port: dict, path_type: str = "Prefix") -> dict:
    return {"host": host, "http": {"paths": [{"path": path, "pathType": path_type,
                                              "backend": {"service": {"name": svc, "port": port}}}]}}


@pytest.fixture(scope="module")
def routed(cluster: Server) -> tuple[Server, str]:
    for name in ("ing-a", "ing-b"):
        cluster.apply(echo_deployment(name, 1))
        cluster.apply(service(name, {"app": name}, [{"name": "web", "port": 80, "targetPort": 8080}]))
    cluster.apply(ingress("routes", [rule("a.example.test", "/", "ing-a", {"name": "web"}),
                                     rule("b.example.test", "/api", "ing-b", {"number": 80})]))
    address = eventually(lambda: kubectl_json(cluster, "ingress", "routes")["status"]["loadBalancer"]["ingress"][0]
                         ["ip"], timeout=60, what="the Ingress's address")
    return cluster, address


def nginx_settled(srv: Server) -> bool:
    """Only the newest generation of nginx workers left. Right after a reload an old worker that has not yet
    read its QUIT may still accept a connection and serve it with the previous config."""
    from pathlib import Path

    master = (srv.data_dir / "ingress" / "nginx.pid").read_text().strip()
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return len(children) == 1


def pod_of(app: str, srv: Server) -> str:
    return kubectl_json(srv, "pods", "-l", f"app={app}")["items"][0]["metadata"]["name"]


def test_default_class_and_controller_service(routed: tuple[Server, str]) -> None:
    srv, address = routed
    cls = kubectl_json(srv, "ingressclass", "nanokube")
    assert cls["spec"]["controller"] == "nanokube.io/ingress-nginx"
    assert cls["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"] == "true"
    svc = kubectl_json(srv, "svc", "-n", "kube-system", "nanokube-ingress")
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["status"]["loadBalancer"]["ingress"][0]["ip"] == address
    table = srv.kubectl("get", "ingress", "routes").stdout
    assert address in table.splitlines()[1], table


def test_routes_by_host_and_path(routed: tuple[Server, str]) -> None:
    srv, address = routed
    pod_a, pod_b = eventually(lambda: (pod_of("ing-a", srv), pod_of("ing-b", srv)))

    def reply(url: str) -> dict:
        code, body = curl(url, address)
        assert code == 200, (url, code, body)
        return json.loads(body)

    got = eventually(lambda: reply("http://a.example.test/anything"), timeout=90, what="a.example.test served")
    assert got["pod"] == pod_a and got["path"] == "/anything"
    got = eventually(lambda: reply("http://b.example.test/api"), timeout=60)
    assert got["pod"] == pod_b
    assert reply("http://b.example.test/api/v1/x")["pod"] == pod_b
    # element-wise prefix: /apix is not under /api; no rule for it -> the default backend's 404
    assert curl("http://b.example.test/apix", address)[0] == 404
    assert curl("http://b.example.test/", address)[0] == 404
    assert curl("http://c.example.test/", address)[0] == 404


def test_kubectl_create_ingress_and_other_class_ignored(routed: tuple[Server, str]) -> None:
    srv, address = routed
    srv.kubectl("create", "ingress", "made", "--rule=c.example.test/c*=ing-a:web")
    srv.kubectl("create", "ingress", "elsewhere", "--class=other", "--rule=d.example.test/*=ing-a:web")
    code = eventually(lambda: curl("http://c.example.test/c/deep", address)[0] == 200, timeout=60)
    assert code
    assert curl("http://d.example.test/", address)[0] == 404
    other = kubectl_json(srv, "ingress", "elsewhere")
    assert not (other.get("status") or {}).get("loadBalancer")


def self_signed(host: str, directory) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / f"{host}.crt", directory / f"{host}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def test_tls_from_secret_with_sni(routed: tuple[Server, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    srv, address = routed
    certs = {host: self_signed(host, tmp_path) for host in ("s.example.test", "t.example.test")}
    for host, (cert, key) in certs.items():
        srv.kubectl("create", "secret", "tls", host.split(".")[0] + "-tls", f"--cert={cert}", f"--key={key}")
    # a Secret that holds no certificate must not block the rest: its host just gets no TLS
    junk = "bm90IGEgY2VydGlmaWNhdGU="
    srv.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "junk-tls"}, "type": "kubernetes.io/tls",
               "data": {"tls.crt": junk, "tls.key": junk}})
    srv.apply(ingress("junk", [rule("junk.example.test", "/", "ing-a", {"name": "web"})],
                      tls=[{"hosts": ["junk.example.test"], "secretName": "junk-tls"}]))
    tls = [{"hosts": [host], "secretName": host.split(".")[0] + "-tls"} for host in certs]
    srv.apply(ingress("secure", [rule(host, "/", "ing-a", {"name": "web"}) for host in certs], tls=tls))
    pod_a = pod_of("ing-a", srv)
    for host, (cert, _key) in certs.items():
        # the certificate of each host verifies against its own Secret only: the right one was chosen by SNI
        def served(host: str = host, cert: str = cert) -> bool:
            code, body = curl(f"https://{host}/x", address, port=443, extra=("--cacert", cert))
            return code == 200 and json.loads(body)["pod"] == pod_a
        assert eventually(served, timeout=60, what=f"https://{host}")
    # a worker of the config before the last reload may still accept once more and present no certificate for s
    eventually(lambda: nginx_settled(srv), timeout=30, what="old nginx workers gone")
    other_cert = certs["t.example.test"][0]
    code, _ = curl("https://s.example.test/x", address, port=443, extra=("--cacert", other_cert))
    assert code == 0  # curl fails the handshake: s's certificate does not verify against t's
    code, why = curl("https://s.example.test/x", address, port=443,
                     extra=("--cacert", certs["s.example.test"][0], "--http2"))
    assert code == 200, why
    version = subprocess.run(["curl", "-sS", "--max-time", "5", "--resolve", f"s.example.test:443:{address}",
                              "--cacert", certs["s.example.test"][0], "--http2", "-o", "/dev/null",
                              "-w", "%{http_version}", "https://s.example.test/"],
                             capture_output=True, text=True, timeout=20).stdout
    assert version == "2"


def explain(srv: Server, name: str, url: str) -> tuple[int, dict]:
    import sys

    proc = subprocess.run([sys.executable, "-m", "nanokube", "explain", "ingress", name, "--url", url, "-o", "json",
                           "--kubeconfig", str(srv.kubeconfig)], capture_output=True, text=True, timeout=60)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_explain_ingress(routed: tuple[Server, str]) -> None:
    srv, address = routed
    code, report = explain(srv, "routes", "http://b.example.test/api/v1")
    pod_ip = kubectl_json(srv, "pods", "-l", "app=ing-b")["items"][0]["status"]["podIP"]
    assert code == 0 and report["rule"] == {"host": "b.example.test", "path": "/api", "pathType": "Prefix"}
    assert report["backend"]["service"] == "default/ing-b" and report["backend"]["endpoints"] == [f"{pod_ip}:8080"]
    assert report["address"] == [address]
    code, report = explain(srv, "routes", "http://b.example.test/apix")
    assert code == 1 and report["rule"] is None and "404" in report["verdict"]["why"]
    code, report = explain(srv, "elsewhere", "http://d.example.test/")
    assert code == 1 and "ignored" in report["verdict"]["why"]


def test_no_failed_request_during_ingress_changes_and_a_rollout(routed: tuple[Server, str]) -> None:
    import http.client
    import threading
    import time

    srv, address = routed
    srv.apply(echo_deployment("ing-load", 2))
    srv.apply(service("ing-load", {"app": "ing-load"}, [{"name": "web", "port": 80, "targetPort": 8080}]))
    srv.apply(ingress("load", [rule("l.example.test", "/", "ing-load", {"name": "web"})]))
    eventually(lambda: curl("http://l.example.test/", address)[0] == 200, timeout=90, what="l.example.test served")
    eventually(lambda: nginx_settled(srv), timeout=30, what="old nginx workers gone")
    stop = threading.Event()
    results: dict[str, int] = {"ok": 0}
    failures: list[str] = []

    def load() -> None:
        deadline = time.monotonic() + 150  # bounded even if the test body hangs
        while not stop.is_set() and time.monotonic() < deadline:
            conn = http.client.HTTPConnection(address, 80, timeout=10)
            try:
                conn.request("GET", "/", headers={"Host": "l.example.test"})
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    results["ok"] += 1
                else:
                    failures.append(f"status {resp.status}")
            except OSError as exc:
                failures.append(repr(exc))
            finally:
                conn.close()

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    try:
        for i in range(20):
            paths = [{"path": f"/p{j}", "pathType": "Prefix",
                      "backend": {"service": {"name": "ing-load", "port": {"name": "web"}}}} for j in range(i + 1)]
            spec_rule = rule("l.example.test", "/", "ing-load", {"name": "web"})
            spec_rule["http"]["paths"].extend(paths)
            srv.apply(ingress("load", [spec_rule]))
            time.sleep(0.1)
        srv.kubectl("rollout", "restart", "deployment", "ing-load")
        srv.kubectl("rollout", "status", "deployment", "ing-load", "--timeout=120s", timeout=150)
        before = results["ok"]
        eventually(lambda: results["ok"] > before + 20, timeout=30, what="requests after the rollout")
    finally:
        stop.set()
        worker.join(timeout=20)
    assert failures == [], failures[:5]
    assert results["ok"] > 50


def test_restart_leaves_no_nginx_and_serves_again(routed: tuple[Server, str]) -> None:
    srv, address = routed
    prefix = str(srv.data_dir / "ingress")
    assert subprocess.run(["pgrep", "-f", prefix], capture_output=True).returncode == 0  # nginx runs
    assert srv.stop() == 0
    assert subprocess.run(["pgrep", "-f", prefix], capture_output=True).returncode == 1  # and is gone with it
    srv.start()
    assert eventually(lambda: curl("http://a.example.test/", address)[0] == 200, timeout=90,
                      what="a.example.test served after the restart")


HEADERS_AND_UPGRADE = r'''
import json, os, socket, threading
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((os.environ.get("NANOKUBE_BIND", "0.0.0.0"), 8080))
srv.listen(64)
def handle(conn):
    reader = conn.makefile("rb")
    reader.readline()
    headers = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("upgrade", "").lower() == "websocket":
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        while data := conn.recv(4096):
            conn.sendall(data)
    else:
        body = json.dumps(headers).encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
    conn.close()
while True:
    threading.Thread(target=handle, args=(srv.accept()[0],), daemon=True).start()
'''


def test_forwarded_headers_and_websocket_upgrade(routed: tuple[Server, str]) -> None:
    import socket

    srv, address = routed
    srv.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ing-ws", "labels": {"app": "ing-ws"}},
               "spec": {"terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "ws", "image": "python", "command": ["python3", "-c",
                                                                                     HEADERS_AND_UPGRADE]}]}})
    srv.apply(service("ing-ws", {"app": "ing-ws"}, [{"name": "web", "port": 80, "targetPort": 8080}]))
    srv.apply(ingress("ws", [rule("ws.example.test", "/", "ing-ws", {"number": 80})]))

    def headers() -> dict:
        code, body = curl("http://ws.example.test/h", address)
        assert code == 200, (code, body)
        return json.loads(body)

    got = eventually(headers, timeout=90, what="ws.example.test served")
    eventually(lambda: nginx_settled(srv), timeout=30, what="old nginx workers gone")
    assert got["host"] == "ws.example.test" and got["x-forwarded-host"] == "ws.example.test"
    assert got["x-forwarded-proto"] == "http" and got["x-forwarded-port"] == "80" and got["x-forwarded-for"]
    with socket.create_connection((address, 80), timeout=10) as sock:
        sock.sendall(b"GET /chat HTTP/1.1\r\nHost: ws.example.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, head
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        sock.sendall(b"frames both ways")
        echoed = b""
        while len(echoed) < len(b"frames both ways"):
            chunk = sock.recv(4096)
            assert chunk, echoed
            echoed += chunk
        assert echoed == b"frames both ways"
