"""An HTTPS probe against a self-signed server (the kubelet never verifies), and malloc_trim giving memory back."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nanokube.agent.probes import Target, http_get
from nanokube.aio import memtrim


def self_signed(tmp: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not-the-pod")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (tmp / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "tls.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp / "tls.crt", tmp / "tls.key")
    return ctx


async def no_exec(argv: list[str], timeout: float) -> tuple[int, str]:
    raise AssertionError("not an exec probe")


async def test_https_probe_accepts_a_self_signed_certificate(tmp_path: Path) -> None:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        status = b"200 OK" if seen[-1].startswith(b"GET /healthz ") else b"503 Service Unavailable"
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=self_signed(tmp_path))
    port = server.sockets[0].getsockname()[1]
    target = Target("127.0.0.1", {"https": port}, no_exec)
    try:
        ok, _ = await http_get({"scheme": "HTTPS", "port": "https", "path": "/healthz"}, target, 2)
        assert ok and seen[-1].startswith(b"GET /healthz HTTP/1.1")
        ok, message = await http_get({"scheme": "HTTPS", "port": port, "path": "/other"}, target, 2)
        assert not ok and "503" in message
        ok, message = await http_get({"port": port, "path": "/healthz"}, target, 2)  # plain HTTP to a TLS port
        assert not ok
    finally:
        server.close()
        await server.wait_closed()


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(memtrim._malloc_trim is None, reason="the C library has no malloc_trim")
def test_trim_returns_freed_heap_pages_to_the_kernel() -> None:
    # 1 KiB objects live in glibc's heap (pymalloc takes <= 512 bytes); keeping every 16th one alive leaves holes
    # glibc does not give back by itself, as a server's start-up does.
    blocks = [bytearray(1024) for _ in range(40_000)]
    keep = blocks[::16]
    del blocks
    before = rss_kib()
    assert memtrim.trim()
    assert before - rss_kib() > 20_000, "expected most of the ~37 MiB freed to be returned"
    assert len(keep) == 2500
