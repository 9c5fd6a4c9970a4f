"""Helpers for API server tests: a raw HTTP client for a running server and a read-only look into its store."""

from __future__ import annotations

import base64
import json
import sqlite3
import ssl
from typing import Any

import urllib3
from tests.conftest import Server

SERVICES = "/api/v1/namespaces/default/services"
IP_KEYS = "/registry/ranges/serviceips/"
PORT_KEYS = "/registry/ranges/servicenodeports/"


class Http:
    """JSON over HTTPS with the server's token; returns (status, decoded body)."""

    def __init__(self, srv: Server, maxsize: int = 1) -> None:
        ctx = ssl.create_default_context(cafile=str(srv.data_dir / "pki" / "ca.crt"))
        self.pool = urllib3.PoolManager(ssl_context=ctx, maxsize=maxsize, retries=False)
        self.base = srv.url
        self.auth = f"Bearer {srv.token}"

    def __call__(self, method: str, path: str, body: Any = None, *, ctype: str = "application/json",
                 headers: dict[str, str] | None = None, timeout: float = 30.0) -> tuple[int, Any]:
        hdrs = {"Content-Type": ctype, "Authorization": self.auth, **(headers or {})}
        data = json.dumps(body).encode() if body is not None else None
        resp = self.pool.request(method, self.base + path, body=data, headers=hdrs, timeout=timeout)
        try:
            return resp.status, json.loads(resp.data) if resp.data else None
        except ValueError:
            return resp.status, resp.data

    def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, out = self(method, path, body, **kw)
        assert 200 <= status < 300, (method, path, status, out)
        return out

    def list_rv(self, path: str = SERVICES) -> str:
        return self.ok("GET", path)["metadata"]["resourceVersion"]


def live_keys(srv: Server, prefix: str) -> dict[str, dict[str, Any]]:
    """Live keys under prefix in the server's store: its SQLite log (read-only; WAL lets us read beside the
    writer) or, for a server on etcd, etcd's JSON gateway."""
    if "--datastore-endpoint" in srv.args:
        return _etcd_live_keys(srv, prefix)
    db = sqlite3.connect(f"file:{srv.data_dir / 'state.db'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT key, value, deleted FROM log WHERE id IN (SELECT MAX(id) FROM log WHERE key >= ? AND key < ? "
            "GROUP BY key)", (prefix, prefix + "\U0010ffff")).fetchall()
    finally:
        db.close()
    return {key: json.loads(value) for key, value, deleted in rows if not deleted}


def _etcd_live_keys(srv: Server, prefix: str) -> dict[str, dict[str, Any]]:
    endpoint = srv.args[srv.args.index("--datastore-endpoint") + 1].split(",")[0]
    root = srv.args[srv.args.index("--datastore-prefix") + 1] if "--datastore-prefix" in srv.args else ""
    low = (root + prefix).encode()
    high = low[:-1] + bytes([low[-1] + 1])
    body = json.dumps({"key": base64.b64encode(low).decode(), "range_end": base64.b64encode(high).decode()})
    resp = urllib3.request("POST", endpoint + "/v3/kv/range", body=body.encode(), timeout=30)
    kvs = json.loads(resp.data).get("kvs", [])
    return {base64.b64decode(kv["key"]).decode()[len(root):]: json.loads(base64.b64decode(kv["value"]))
            for kv in kvs}


def held_by_services(services: list[dict[str, Any]]) -> tuple[dict[str, str], dict[int, str]]:
    """ClusterIPs and NodePorts (incl. healthCheckNodePort) the given Services hold -> owner name."""
    ips: dict[str, str] = {}
    ports: dict[int, str] = {}
    for svc in services:
        owner = f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
        spec = svc["spec"]
        for ip in spec.get("clusterIPs") or []:
            if ip != "None":
                assert ip not in ips, f"{ip} held by {ips[ip]} and {owner}"
                ips[ip] = owner
        numbers = {p["nodePort"] for p in spec.get("ports") or [] if p.get("nodePort")}
        if spec.get("healthCheckNodePort"):
            numbers.add(spec["healthCheckNodePort"])
        for port in numbers:
            assert port not in ports, f"nodePort {port} held by {ports[port]} and {owner}"
            ports[port] = owner
    return ips, ports


def assert_ranges_match(srv: Server, services: list[dict[str, Any]]) -> None:
    """The /registry/ranges keys are exactly the IPs and ports the Services hold, each owned by its holder."""
    ips, ports = held_by_services(services)
    ip_keys = live_keys(srv, IP_KEYS)
    port_keys = live_keys(srv, PORT_KEYS)
    assert {k[len(IP_KEYS):] for k in ip_keys} == set(ips)
    assert {int(k[len(PORT_KEYS):]) for k in port_keys} == set(ports)
    for key, value in ip_keys.items():
        owner = value["owner"]
        assert f"{owner['namespace']}/{owner['name']}" == ips[key[len(IP_KEYS):]]
