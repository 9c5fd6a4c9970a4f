"""Live checks for `nanokube explain`: a real DNS query, the proxy's status endpoint, a TCP connect."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype

from nanokube.api.meta import Obj

DEFAULT_PROXY_STATUS = "http://127.0.0.1:10256"


async def dns_query(server: str, port: int, name: str, rdtype: str, timeout: float) -> Obj:
    """Ask the cluster DNS once over UDP; the answer as {rcode, answers: ["CNAME x.", "A 1.2.3.4"], ms}."""
    query = dns.message.make_query(name, dns.rdatatype.from_text(rdtype))
    started = time.perf_counter()
    try:
        response = await dns.asyncquery.udp(query, server, port=port, timeout=timeout)
    except (dns.exception.DNSException, OSError) as err:
        return {"name": name, "type": rdtype, "server": f"{server}:{port}", "error": str(err) or type(err).__name__}
    answers = [f"{dns.rdatatype.to_text(rrset.rdtype)} {rd.to_text()}" for rrset in response.answer for rd in rrset]
    return {"name": name, "type": rdtype, "server": f"{server}:{port}", "rcode": dns.rcode.to_text(response.rcode()),
            "answers": answers, "ms": round((time.perf_counter() - started) * 1000, 1)}


async def proxy_status(base_url: str, timeout: float, *, token: str | None = None, socket: str | None = None) -> Obj:
    """The proxy's GET /status ({mode, nodeIPs, services: {"ns/name": {programmed_at, ports, endpoints}}}),
    falling back to GET /services; {"error": ...} when nothing answers. Over the status Unix socket when one
    is given (it needs no token), else at base_url with the cluster's bearer token."""
    if socket:
        found = await _proxy_status(socket, "http://localhost", timeout, None)
        if "error" not in found:
            return found
    return await _proxy_status(None, base_url, timeout, token)


async def _proxy_status(socket: str | None, base_url: str, timeout: float, token: str | None) -> Obj:
    base = base_url.rstrip("/")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    connector = aiohttp.UnixConnector(path=socket) if socket else None
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout), connector=connector,
                                         headers=headers) as session:
            for path in ("/status", "/services"):
                async with session.get(base + path) as resp:
                    if resp.status == 404:
                        continue
                    if resp.status != 200:
                        return {"error": f"{base}{path} answered HTTP {resp.status}"}
                    data = await resp.json(content_type=None)
                if not isinstance(data, dict):
                    return {"error": f"{base}{path} answered something other than a JSON object"}
                if path == "/status":
                    return {"services": data.get("services") or {}, "nodeIPs": data.get("nodeIPs") or [],
                            "mode": data.get("mode")}
                return {"services": data}
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as err:
        return {"error": f"no proxy status at {base} ({type(err).__name__})"}
    return {"error": f"no proxy status at {base} (404)"}


def programmed_time(value: Any) -> datetime | None:
    """programmed_at may be epoch seconds or an RFC 3339 string."""
    if isinstance(value, int | float) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


async def tcp_listening(host: str, port: int, timeout: float) -> bool | None:
    """True when something accepts a TCP connection; False when refused; None when it timed out."""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return None
    except OSError:
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True
