"""`nanokube server` on an etcd that requires TLS client certificates (--datastore-cafile/-certfile/-keyfile)."""

from __future__ import annotations

import datetime
import ipaddress
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tests.etcd_cluster import ETCD, running_etcd
from tests.scale_out.conftest import control_plane_args, new_server, ranges

from nanokube.store.etcd import EtcdStore
from nanokube.store.etcd_gateway import EtcdGateway, ssl_context
from nanokube.store.log import StoreError


def _write(directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    crt, pem = directory / f"{name}.crt", directory / f"{name}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    pem.chmod(0o600)
    return crt, pem


def _cert(subject: str, issuer: x509.Name | None, signer: ec.EllipticCurvePrivateKey | None,
          usage: list[x509.ObjectIdentifier] | None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1)))
    if usage is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False).add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(signer or key, hashes.SHA256()), key


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca, ca_key = _cert("etcd-ca", None, None, None)
    server, server_key = _cert("etcd", ca.subject, ca_key, [ExtendedKeyUsageOID.SERVER_AUTH,
                                                            ExtendedKeyUsageOID.CLIENT_AUTH])
    client, client_key = _cert("nanokube", ca.subject, ca_key, [ExtendedKeyUsageOID.CLIENT_AUTH])
    out = {"ca": _write(tmp_path, "ca", ca, ca_key)[0]}
    out["server"], out["server_key"] = _write(tmp_path, "server", server, server_key)
    out["client"], out["client_key"] = _write(tmp_path, "client", client, client_key)
    return out


async def test_store_needs_the_client_certificate(pki: dict[str, Path]) -> None:
    if ETCD is None:
        pytest.skip("etcd (Debian's etcd-server) is not installed")
    with running_etcd(tls=(pki["ca"], pki["server"], pki["server_key"])) as etcd:
        good = EtcdStore(EtcdGateway([etcd.endpoints], ssl_context=ssl_context(
            str(pki["ca"]), str(pki["client"]), str(pki["client_key"]))))
        await good.start()
        try:
            created = await good.create("/registry/configmaps/default/a", {"metadata": {"name": "a"}})
            assert (await good.get("/registry/configmaps/default/a")) == created
        finally:
            await good.close()
        anonymous = EtcdStore(EtcdGateway([etcd.endpoints], ssl_context=ssl_context(str(pki["ca"]), None, None),
                                          retry_for=1.0))
        with pytest.raises(StoreError):
            await anonymous.start()
        await anonymous.close()


def test_server_on_a_tls_etcd(pki: dict[str, Path]) -> None:
    if ETCD is None:
        pytest.skip("etcd (Debian's etcd-server) is not installed")
    with running_etcd(tls=(pki["ca"], pki["server"], pki["server_key"])) as etcd:
        srv = new_server(*control_plane_args(etcd), *ranges(), "--components=", "--no-agent",
                         "--datastore-cafile", str(pki["ca"]), "--datastore-certfile", str(pki["client"]),
                         "--datastore-keyfile", str(pki["client_key"]))
        srv.start(timeout=60)
        try:
            srv.kubectl("create", "configmap", "over-tls", "--from-literal=v=1")
            got = json.loads(srv.kubectl("get", "configmap", "over-tls", "-o", "json").stdout)
            assert got["data"] == {"v": "1"}
        finally:
            srv.stop()
