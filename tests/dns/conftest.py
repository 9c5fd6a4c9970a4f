"""Fixtures: Kubernetes objects shaped as the API returns them, a running DNS server fed with them, and a tiny
upstream resolver on 127.0.0.1 answering from a table (built with dnspython)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
import types
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from nanokube.dns import DnsSettings, build_dns
from nanokube.dns.run import DnsComponents, serve

Obj = dict[str, Any]


def namespace(name: str) -> Obj:
    return {"kind": "Namespace", "apiVersion": "v1",
            "metadata": {"name": name, "uid": f"uid-ns-{name}", "resourceVersion": "10",
                         "creationTimestamp": "2026-01-01T00:00:00Z",
                         "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def service(ns: str, name: str, cluster_ips: list[str] | None, ports: list[tuple[str, str, int]], *,
            svc_type: str = "ClusterIP", external_name: str = "", publish_not_ready: bool = False,
            rv: str = "20") -> Obj:
    spec: Obj = {"type": svc_type, "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                 "ports": [{"name": n, "protocol": p, "port": port, "targetPort": port} for n, p, port in ports]}
    if not spec["ports"]:
        del spec["ports"]
    if svc_type == "ExternalName":
        spec["externalName"] = external_name
    elif cluster_ips is None:
        spec.update(clusterIP="None", clusterIPs=["None"], ipFamilies=["IPv4"], ipFamilyPolicy="SingleStack")
    else:
        families = ["IPv6" if ":" in ip else "IPv4" for ip in cluster_ips]
        spec.update(clusterIP=cluster_ips[0], clusterIPs=cluster_ips, ipFamilies=families,
                    ipFamilyPolicy="RequireDualStack" if len(families) > 1 else "SingleStack")
    if publish_not_ready:
        spec["publishNotReadyAddresses"] = True
    spec["selector"] = {"app": name}
    return {"kind": "Service", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": ns, "uid": f"uid-svc-{ns}-{name}", "resourceVersion": rv,
                         "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": name}},
            "spec": spec, "status": {"loadBalancer": {}}}


def endpoint(ip: str, *, ready: bool = True, hostname: str = "", pod: str = "") -> Obj:
    ep: Obj = {"addresses": [ip],
               "conditions": {"ready": ready, "serving": ready, "terminating": False},
               "nodeName": "node-1",
               "targetRef": {"kind": "Pod", "namespace": "x", "name": pod or f"pod-{ip}", "uid": f"uid-{ip}"}}
    if hostname:
        ep["hostname"] = hostname
    return ep


def endpointslice(ns: str, svc: str, suffix: str, endpoints: list[Obj], ports: list[tuple[str, str, int]], *,
                  family: str = "IPv4", rv: str = "30") -> Obj:
    return {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1", "addressType": family,
            "metadata": {"name": f"{svc}-{suffix}", "namespace": ns, "uid": f"uid-eps-{svc}-{suffix}",
                         "resourceVersion": rv, "generateName": f"{svc}-",
                         "labels": {"kubernetes.io/service-name": svc,
                                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": svc,
                                              "uid": f"uid-svc-{ns}-{svc}", "controller": True,
                                              "blockOwnerDeletion": True}]},
            "endpoints": endpoints,
            "ports": [{"name": n, "protocol": p, "port": port} for n, p, port in ports]}


def pod(ns: str, name: str, ip: str, rv: str = "40") -> Obj:
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": ns, "uid": f"uid-pod-{name}", "resourceVersion": rv},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "127.0.0.1"}}


def cluster_objects() -> list[Obj]:
    http = [("http", "TCP", 80)]
    return [
        namespace("default"), namespace("testns"), namespace("kube-system"),
        service("kube-system", "kube-dns", ["10.96.0.10"],
                [("dns", "UDP", 53), ("dns-tcp", "TCP", 53), ("metrics", "TCP", 9153)]),
        service("testns", "svc1", ["10.96.0.11"], [("http", "TCP", 80), ("https", "TCP", 443)]),
        endpointslice("testns", "svc1", "a1", [endpoint("10.244.0.11", pod="svc1-pod")],
                      [("http", "TCP", 8080), ("https", "TCP", 8443)]),
        service("testns", "svcempty", ["10.96.0.12"], http),
        service("testns", "svc6", ["fd00:96::6"], http),
        service("testns", "dual", ["10.96.0.13", "fd00:96::13"], http),
        service("testns", "unnamed", ["10.96.0.14"], [("", "TCP", 8000)]),
        service("testns", "hdls1", None, http),
        endpointslice("testns", "hdls1", "v4", [
            endpoint("10.244.0.2"), endpoint("10.244.0.3"),
            endpoint("10.244.0.4", hostname="dup-name"), endpoint("10.244.0.5", hostname="dup-name"),
            endpoint("10.244.0.9", ready=False)], http),
        endpointslice("testns", "hdls1", "v6", [endpoint("fd00:244::1"), endpoint("fd00:244::2")], http,
                      family="IPv6"),
        service("testns", "hdlsprtls", None, []),
        endpointslice("testns", "hdlsprtls", "a", [endpoint("10.244.0.20")], []),
        service("testns", "hdlsempty", None, http),
        service("testns", "notready", None, http, publish_not_ready=True),
        endpointslice("testns", "notready", "a", [endpoint("10.244.0.30", ready=False, hostname="peer-0")], http),
        service("testns", "external", None, [], svc_type="ExternalName", external_name="ext.interwebs.test"),
        service("testns", "ext-to-svc", None, [], svc_type="ExternalName",
                external_name="svc1.testns.svc.cluster.local"),
        service("testns", "ext-ip", None, [], svc_type="ExternalName", external_name="192.0.2.10"),
        service("testns", "ext-missing", None, [], svc_type="ExternalName",
                external_name="missing.testns.svc.cluster.local"),
        service("ghostns", "svc-ghost", ["10.96.0.99"], http),
        # the article's names
        service("default", "mariadb-service", ["10.96.0.20"], [("mysql", "TCP", 3306)]),
        endpointslice("default", "mariadb-service", "x", [endpoint("10.244.1.9", pod="mariadb-0")],
                      [("mysql", "TCP", 3306)]),
        service("default", "training-aurora-svc", None, [], svc_type="ExternalName",
                external_name="training-aurora.cluster-abc.us-east-1.rds.amazonaws.com"),
        service("default", "headless-svc", None, [("web", "TCP", 80)]),
        endpointslice("default", "headless-svc", "y", [endpoint("10.244.1.1", hostname="pod-1", pod="pod-1"),
                                                       endpoint("10.244.1.2", hostname="pod-2", pod="pod-2")],
                      [("web", "TCP", 80)]),
        pod("testns", "svc1-pod", "10.244.0.11"),
        pod("default", "pod-1", "10.244.1.1"),
    ]


# -- the fake upstream -------------------------------------------------------------------------------------
BIG_TXT = ["x" * 200 for _ in range(10)]
UPSTREAM_RECORDS: dict[tuple[str, str], list[str]] = {
    ("ext.interwebs.test.", "A"): ["192.0.2.1"],
    ("training-aurora.cluster-abc.us-east-1.rds.amazonaws.com.", "A"): ["192.0.2.50"],
    ("example.org.", "A"): ["192.0.2.80"],
    ("big.example.org.", "TXT"): [" ".join(f'"{s}"' for s in BIG_TXT)],
}


@dataclass
class Upstream:
    address: tuple[str, int]
    queries: list[str] = field(default_factory=list)


class _UpstreamUdp(asyncio.DatagramProtocol):
    def __init__(self, up: Upstream) -> None:
        self.up = up
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        reply = upstream_answer(self.up, data, tcp=False)
        if reply is not None:
            self.transport.sendto(reply, addr)


def upstream_answer(up: Upstream, data: bytes, *, tcp: bool) -> bytes | None:
    query = dns.message.from_wire(data)
    question = query.question[0]
    up.queries.append(f"{question.name.to_text().lower()} {dns.rdatatype.to_text(question.rdtype)}")
    response = dns.message.make_response(query)
    response.flags |= dns.flags.RA
    key = (question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype))
    if key in UPSTREAM_RECORDS:
        response.answer.append(dns.rrset.from_text(question.name, 60, "IN", key[1], *UPSTREAM_RECORDS[key]))
    else:
        response.set_rcode(dns.rcode.NXDOMAIN)
    limit = 65535 if tcp else max(512, query.payload if query.edns >= 0 else 512)
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        response.answer.clear()
        response.flags |= dns.flags.TC
        return response.to_wire()


async def _upstream_tcp(up: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        size = struct.unpack("!H", await reader.readexactly(2))[0]
        reply = upstream_answer(up, await reader.readexactly(size), tcp=True)
        if reply is not None:
            writer.write(struct.pack("!H", len(reply)) + reply)
            await writer.drain()
    writer.close()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    loop = asyncio.get_running_loop()
    up = Upstream(("127.0.0.1", 0))
    for _ in range(20):  # UDP and TCP on one free port number
        transport, _ = await loop.create_datagram_endpoint(lambda: _UpstreamUdp(up), local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        try:
            server = await asyncio.start_server(lambda r, w: _upstream_tcp(up, r, w), "127.0.0.1", port)
            break
        except OSError:
            transport.close()
    up.address = ("127.0.0.1", port)
    yield up
    transport.close()
    server.close()
    await server.wait_closed()


# -- the server under test ---------------------------------------------------------------------------------
@dataclass
class RunningDns:
    parts: DnsComponents
    address: tuple[str, int]

    @property
    def cache(self):  # type: ignore[no-untyped-def]
        return self.parts.cache


@contextlib.asynccontextmanager
async def running_dns(settings: DnsSettings, objects: list[Obj] | None, *, synced: bool = True,
                      check_loops: bool = False) -> AsyncIterator[RunningDns]:
    parts = build_dns(settings)
    for obj in objects or ():
        parts.cache.add(obj)
    if synced:
        parts.cache.mark_synced()
    task = asyncio.create_task(serve(parts, check_loops=check_loops))
    started = asyncio.create_task(parts.server.started.wait())
    await asyncio.wait([task, started], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        started.cancel()
        task.result()
    try:
        yield RunningDns(parts, parts.server.addresses[0])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def cluster_dns(upstream: Upstream) -> AsyncIterator[RunningDns]:
    settings = DnsSettings(listen=[("127.0.0.1", 0)], upstreams=[f"{upstream.address[0]}:{upstream.address[1]}"])
    async with running_dns(settings, cluster_objects()) as running:
        yield running


# -- query helpers (a fixture, because test modules here cannot import each other) ----------------------
SOA = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL 7200 1800 86400 5"


async def ask(address: tuple[str, int], name: str, qtype: str, *, tcp: bool = False,
              use_edns: bool | int = False, payload: int = 1232) -> dns.message.Message:
    query = dns.message.make_query(name, qtype, use_edns=use_edns, payload=payload)
    if tcp:
        return await dns.asyncquery.tcp(query, address[0], port=address[1], timeout=3)
    return await dns.asyncquery.udp(query, address[0], port=address[1], timeout=3)


def lines(section: list) -> list[str]:  # type: ignore[type-arg]
    out = []
    for rrset in section:
        for rdata in rrset:
            text = f"{rrset.name.to_text()} {rrset.ttl} IN {dns.rdatatype.to_text(rrset.rdtype)} {rdata.to_text()}"
            if rrset.rdtype == dns.rdatatype.SOA:
                text = re.sub(r"(hostmaster\.\S+) \d+ ", r"\1 SERIAL ", text)
            out.append(text)
    return sorted(out)


@pytest.fixture
def dnsq() -> types.SimpleNamespace:
    return types.SimpleNamespace(ask=ask, lines=lines, SOA=SOA)
