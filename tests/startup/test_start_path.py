"""What `nanokube server` does on its way to ready stays cut (issue 19: fixture setup < 1 s; issue 11: rootless
ready < 2 s): helper processes import only what they use, cryptography waits for the first certificate or
token, and the certificates of a fresh data dir come from one child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cryptography import x509

from nanokube.apiserver.certs import apiserver_spec, ensure_issued, kubelet_spec
from nanokube.apiserver.tokens import TokenSigner


def modules_after(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after `statement`."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_the_pod_reaper_process_loads_nothing_of_the_agent() -> None:
    # `python -m nanokube.agent.reaper` runs beside every server, waiting on a pipe; it used to import the
    # whole agent (aiohttp, the API client) while the server was starting
    loaded = modules_after("import nanokube.agent.reaper")
    assert not {"nanokube.agent.agent", "nanokube.client", "aiohttp", "asyncio"} & loaded


def test_component_settings_load_no_component() -> None:
    # each component is imported by its own task when it starts (server.py), not all of them up front
    loaded = modules_after("import nanokube.component_settings")
    assert not {"nanokube.controllers.manager", "nanokube.dns.server", "nanokube.agent.agent",
                "nanokube.proxy.run"} & loaded


def test_the_api_server_loads_no_cryptography() -> None:
    loaded = modules_after("import nanokube.server, nanokube.apiserver.run")
    assert not {m for m in loaded if m == "cryptography" or m.startswith("cryptography.")}


def test_the_token_key_is_made_on_the_first_token(tmp_path: Path) -> None:
    signer = TokenSigner(tmp_path)
    assert not (tmp_path / "sa.key").exists()
    token, expires = signer.issue("default", "app", "uid-1", seconds=600, audiences=["api"])
    assert (tmp_path / "sa.key").stat().st_mode & 0o777 == 0o600
    assert signer.verify(token) is None  # an audience that is not ours
    token, expires = signer.issue("default", "app", "uid-1", seconds=600,
                                  audiences=["https://kubernetes.default.svc.cluster.local"])
    again = TokenSigner(tmp_path)  # a restarted server keeps the key: its tokens stay valid
    claims = again.verify(token)
    assert claims is not None and claims["sub"] == "system:serviceaccount:default:app" and claims["exp"] == expires
    assert again.key_id == signer.key_id


def _sans(path: Path) -> tuple[set[str], set[str]]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ({str(ip) for ip in alt.get_values_for_type(x509.IPAddress)},
            set(alt.get_values_for_type(x509.DNSName)))


def test_server_and_kubelet_certificates_are_issued_together(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    server = apiserver_spec(["127.0.0.1", "10.96.0.1"], ["localhost", "kubernetes"])
    kubelet = kubelet_spec("node1", ["127.0.0.1", "10.244.0.1"])
    (ca, crt, key), (ca2, kcrt, kkey) = ensure_issued(pki, server, kubelet)
    assert ca == ca2 == pki / "ca.crt" and crt == pki / "server.crt" and kcrt == pki / "kubelet-node1.crt"
    ca_cert = x509.load_pem_x509_certificate(ca.read_bytes())
    for path in (crt, kcrt):
        x509.load_pem_x509_certificate(path.read_bytes()).verify_directly_issued_by(ca_cert)
    assert _sans(crt) == ({"127.0.0.1", "10.96.0.1"}, {"localhost", "kubernetes"})
    assert _sans(kcrt) == ({"127.0.0.1", "10.244.0.1"}, {"node1", "localhost"})
    cn = x509.load_pem_x509_certificate(kcrt.read_bytes()).subject.rfc4514_string()
    assert cn == "CN=system:node:node1"
    assert key.stat().st_mode & 0o777 == 0o600 and kkey.stat().st_mode & 0o777 == 0o600

    stamps = {p: p.stat().st_mtime_ns for p in (ca, crt, kcrt)}
    ensure_issued(pki, server, kubelet)  # nothing changed: nothing issued
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    moved = kubelet_spec("node1", ["127.0.0.1", "10.244.1.1"])
    ensure_issued(pki, server, moved)  # only the certificate whose addresses changed
    assert crt.stat().st_mtime_ns == stamps[crt] and ca.stat().st_mtime_ns == stamps[ca]
    assert _sans(kcrt)[0] == {"127.0.0.1", "10.244.1.1"}


def test_certificates_from_a_process_with_threads(tmp_path: Path) -> None:
    # with threads running a fork is unsafe: the certificates come from a fresh interpreter instead
    code = ("import threading, sys\nfrom pathlib import Path\n"
            "from nanokube.apiserver.certs import apiserver_spec, ensure_issued, kubelet_spec\n"
            "stop = threading.Event(); threading.Thread(target=stop.wait, daemon=True).start()\n"
            "ensure_issued(Path(sys.argv[1]), apiserver_spec(['127.0.0.1'], ['localhost']),"
            " kubelet_spec('n', ['127.0.0.1']))\nstop.set()\n")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=120,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    ca_cert = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    for name in ("server.crt", "kubelet-n.crt"):
        x509.load_pem_x509_certificate((tmp_path / name).read_bytes()).verify_directly_issued_by(ca_cert)
