"""The cluster CA and the API server's serving certificate (kubectl sends bearer tokens only over TLS).

`cryptography` is imported only when a certificate has to be made (first start, changed SANs), and then in a
short-lived child process: importing it costs tens of milliseconds of every start otherwise, and in the server
it would stay resident for good (about 8 MB of RSS) for a few milliseconds of work. The child is a fork when
the process has a single thread (nothing to start, ~40 ms), else a fresh interpreter (~0.13 s).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import threading
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass(frozen=True)
class CertSpec:
    """A serving certificate signed by the cluster CA: DIR/NAME.crt and DIR/NAME.key, reissued when its
    subject alternative names change (DIR/NAME.sans records them)."""

    name: str
    cn: str
    ip_sans: tuple[str, ...]
    dns_sans: tuple[str, ...]

    @property
    def wanted(self) -> str:
        return "\n".join(sorted(set(self.ip_sans)) + sorted(set(self.dns_sans)))


def apiserver_spec(ip_sans: list[str], dns_sans: list[str]) -> CertSpec:
    return CertSpec("server", "nanokube-apiserver", tuple(ip_sans), tuple(dns_sans))


def kubelet_spec(node_name: str, ip_sans: list[str]) -> CertSpec:
    """The node's kubelet serving certificate (`kubelet-NODE.crt`, CN system:node:NODE)."""
    return CertSpec(f"kubelet-{node_name}", f"system:node:{node_name}", tuple(ip_sans), (node_name, "localhost"))


def ensure_issued(directory: Path, *specs: CertSpec) -> list[tuple[Path, Path, Path]]:
    """Create (once) the CA in directory and (whenever its SANs change) each certificate of specs, all in one
    child process. Returns (ca, cert, key) paths per spec."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_crt, ca_key = directory / "ca.crt", directory / "ca.key"
    have_ca = ca_crt.exists() and ca_key.exists()
    missing = [spec for spec in specs if not (have_ca and _current(directory, spec))]
    if missing:
        _issue_in_child(directory, missing)
    return [(ca_crt, directory / f"{spec.name}.crt", directory / f"{spec.name}.key") for spec in specs]


def _current(directory: Path, spec: CertSpec) -> bool:
    sans_file = directory / f"{spec.name}.sans"
    return (directory / f"{spec.name}.crt").exists() and (directory / f"{spec.name}.key").exists() \
        and sans_file.exists() and sans_file.read_text() == spec.wanted


def ensure_certs(directory: Path, ip_sans: list[str], dns_sans: list[str]) -> tuple[Path, Path, Path]:
    """Create (once) a CA and (whenever the SANs change) a serving cert. Returns (ca, cert, key) paths."""
    return ensure_issued(directory, apiserver_spec(ip_sans, dns_sans))[0]


def ensure_kubelet_cert(directory: Path, node_name: str, ip_sans: list[str]) -> tuple[Path, Path, Path]:
    """The node's kubelet serving certificate (`kubelet-NODE.crt`, CN system:node:NODE), signed by the CA in
    directory (made there first if missing), reissued when the node's addresses change. Returns (ca, cert, key)."""
    return ensure_issued(directory, kubelet_spec(node_name, ip_sans))[0]


def _issue_in_child(directory: Path, specs: list[CertSpec]) -> None:
    if threading.active_count() == 1:  # a fork of a single-threaded process cannot inherit a held lock
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for spec in specs:
                    _issue(directory, spec)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"creating the API server certificates in {directory} failed (see above)")
        return
    package_root = str(Path(__file__).resolve().parents[2])  # the directory holding the nanokube package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH"))
                                                       if p)}
    done = subprocess.run([sys.executable, "-m", "nanokube.apiserver.certs", str(directory),
                           json.dumps([asdict(spec) for spec in specs])],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"creating the API server certificates in {directory} failed: {done.stderr.strip()}")


def _issue(directory: Path, spec: CertSpec) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_crt, ca_key = directory / "ca.crt", directory / "ca.key"
    crt, key = directory / f"{spec.name}.crt", directory / f"{spec.name}.key"
    now = datetime.datetime.now(datetime.UTC)
    if not ca_crt.exists() or not ca_key.exists():
        ca_private = ec.generate_private_key(ec.SECP256R1())
        ca_cert = (x509.CertificateBuilder().subject_name(_name("nanokube-ca")).issuer_name(_name("nanokube-ca"))
                   .public_key(ca_private.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=3650))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                content_commitment=False, key_encipherment=False,
                                                data_encipherment=False, key_agreement=False,
                                                encipher_only=False, decipher_only=False), critical=True)
                   .sign(ca_private, hashes.SHA256()))
        _write_private(ca_key, _key_pem(ca_private))
        ca_crt.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        crt.unlink(missing_ok=True)
    ca_private = serialization.load_pem_private_key(ca_key.read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(ca_crt.read_bytes())
    server_private = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in sorted(set(spec.ip_sans))]
    alt += [x509.DNSName(name) for name in sorted(set(spec.dns_sans))]
    cert = (x509.CertificateBuilder().subject_name(_name(spec.cn)).issuer_name(ca_cert.subject)
            .public_key(server_private.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_private, hashes.SHA256()))  # type: ignore[arg-type]
    _write_private(key, _key_pem(server_private))
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{spec.name}.sans").write_text(spec.wanted)


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    # A plain server context: create_default_context(CLIENT_AUTH) would also load the system CA bundle, which
    # a server that does not ask for client certificates never uses (and loading it costs ~30 ms per start).
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.options |= ssl.OP_NO_COMPRESSION
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


if __name__ == "__main__":
    for fields in json.loads(sys.argv[2]):
        _issue(Path(sys.argv[1]), CertSpec(fields["name"], fields["cn"], tuple(fields["ip_sans"]),
                                           tuple(fields["dns_sans"])))
