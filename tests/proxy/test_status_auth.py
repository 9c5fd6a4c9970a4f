"""The proxy status endpoint asks who is calling (issue 14): /healthz and /livez are open as kube-proxy's;
/services, /status and POST /full-sync need the cluster's token, or the 0600 Unix socket."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

from nanokube.cli.explain_checks import proxy_status
from nanokube.proxy.status import ProxyStatus, StatusServer

TOKEN = "s3cret-token"


async def ask(path: str, *, port: int = 0, unix: str = "", method: str = "GET", token: str | None = None
              ) -> tuple[int, dict]:
    if unix:
        reader, writer = await asyncio.open_unix_connection(unix)
    else:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def test_only_health_is_open_without_the_token(tmp_path: Path) -> None:
    synced: list[int] = []
    sock = str(tmp_path / "proxy.sock")
    server = StatusServer(ProxyStatus(mode="userspace", node_ips=["127.0.0.1"]), "127.0.0.1", 0,
                          full_sync=lambda: synced.append(1), token=TOKEN, unix_socket=sock)
    assert await server.start()
    try:
        port = server.port
        assert (await ask("/healthz", port=port))[0] == 200
        assert (await ask("/livez", port=port))[0] == 200
        for path, method in (("/services", "GET"), ("/status", "GET"), ("/full-sync", "POST"), ("/nope", "GET")):
            assert (await ask(path, port=port, method=method))[0] == 401, path
            assert (await ask(path, port=port, method=method, token="wrong"))[0] == 401, path
        assert await ask("/services", port=port, token=TOKEN) == (200, {})
        assert (await ask("/status", port=port, token=TOKEN))[0] == 200
        assert (await ask("/full-sync", port=port, method="POST", token=TOKEN))[0] == 202
        assert synced == [1]
        # The Unix socket is the owner's only, and needs no token.
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        assert await ask("/services", unix=sock) == (200, {})
        assert (await ask("/full-sync", unix=sock, method="POST"))[0] == 202
        # What `nanokube explain` does: the socket first, else the URL with the token.
        assert "error" not in await proxy_status(f"http://127.0.0.1:{port}", 5, socket=sock)
        assert "error" not in await proxy_status(f"http://127.0.0.1:{port}", 5, token=TOKEN)
        refused = await proxy_status(f"http://127.0.0.1:{port}", 5)
        assert "401" in refused["error"]
    finally:
        await server.close()
    assert not await asyncio.to_thread(os.path.exists, sock)
