"""Connection counters in netns mode: the kernel's per-element counters of set endpoint-connections, real nft in
fresh network namespaces (the lab of test_nftables.py), read back per Service port and endpoint through the
status endpoint's /counters and /metrics, the same interface as the userspace proxy's."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections import Counter

from tests.proxy.objects import service
from tests.proxy.test_counters import http
from tests.proxy.test_nftables import NODE_IP, PODS, WEB, Lab, proxy, slice_of
from tests.proxy.test_nftables import lab as lab  # the module-scoped fixture
from tests.proxy.test_status_auth import TOKEN

from nanokube.proxy.nftables import NftablesBackend
from nanokube.proxy.nftcounters import LIST_COMMAND, parse_counters
from nanokube.proxy.status import StatusServer

VIP = "10.96.0.40"
NODE_PORT = 31140
N = 45


def answered_by(lab: Lab, ns: str, ip: str, port: int, n: int) -> Counter[str]:
    """n new connections; each pod answers with its own address: the pods' own count per endpoint."""
    return Counter(lab.ask(ns, ip, port).split()[0] for _ in range(n))


def fresh_reads(backend: NftablesBackend) -> None:
    """Every read sees the kernel's counts of the moment (no 1 s cache)."""
    backend.counter_reader.max_age = backend.counter_reader.cost_factor = 0


def by_endpoint(counts: dict, frontend: tuple[str, str, int]) -> dict[str, int]:
    return {f"{ip}:{port}": n for (ip, port), n in counts.get(frontend, {}).items() if n}


async def test_new_connections_per_endpoint_match_the_pods_and_reach_metrics(lab: Lab) -> None:
    async with proxy(lab) as p:
        backend = p.backend
        assert isinstance(backend, NftablesBackend)
        fresh_reads(backend)
        status_server = StatusServer(p.status, "127.0.0.1", 0, token=TOKEN, counters=backend.counters)
        await status_server.start()
        try:
            p.on_service_add(service("web", VIP, [{**WEB[0], "nodePort": NODE_PORT}], type="NodePort"))
            p.on_endpointslice_add(slice_of("web", PODS))
            await p.sync()
            assert await backend.counters() == {(VIP, "TCP", 80): {(ip, 8080): 0 for ip in PODS},
                                                (NODE_IP, "TCP", NODE_PORT): {(ip, 8080): 0 for ip in PODS}}

            seen = await asyncio.to_thread(answered_by, lab, lab.client, VIP, 80, N)
            assert len(seen) == 3 and sum(seen.values()) == N
            counts = await backend.counters()
            assert by_endpoint(counts, (VIP, "TCP", 80)) == dict(seen)  # new connections only: one each
            assert by_endpoint(counts, (NODE_IP, "TCP", NODE_PORT)) == {}

            # a node port and a host process: other frontends / hooks of the same Service port, summed per port
            seen += await asyncio.to_thread(answered_by, lab, lab.client, NODE_IP, NODE_PORT, 9)
            seen += await asyncio.to_thread(answered_by, lab, lab.node, VIP, 80, 6)
            code, body = await http(status_server.port, "/metrics", TOKEN)
            assert code == 200
            series = {m[0]: int(m[1]) for m in re.findall(
                r'^nanokube_proxy_endpoint_connections_total\{service="default/web",port="http",'
                r'endpoint="([\d.:]+)"\} (\d+)$', body, re.M)}
            assert series == dict(seen) and sum(series.values()) == N + 15
            code, body = await http(status_server.port, "/counters", None)
            assert code == 401 and PODS[0] not in body

            # an incremental sync that keeps two endpoints (and adds another Service) keeps their counts
            before = by_endpoint(await backend.counters(), (VIP, "TCP", 80))
            p.on_endpointslice_update(slice_of("web", PODS), slice_of("web", PODS[:2], rv="2"))
            p.on_service_add(service("other", "10.96.0.41", WEB))
            p.on_endpointslice_add(slice_of("other", PODS[2:]))
            await p.sync()
            after = by_endpoint(await backend.counters(), (VIP, "TCP", 80))
            assert after == {ep: n for ep, n in before.items() if not ep.startswith(PODS[2] + ":")}
            more = await asyncio.to_thread(answered_by, lab, lab.client, VIP, 80, 12)
            assert set(more) <= set(after)
            assert by_endpoint(await backend.counters(), (VIP, "TCP", 80)) == dict(Counter(after) + more)
            # the netlink dump and `nft -j list set` (the fallback) read the same counts
            assert await backend.counters() == parse_counters(await backend.commands.list_json(LIST_COMMAND))
        finally:
            await status_server.close()


async def test_reads_are_cached_and_a_full_sync_restarts_the_counts(lab: Lab) -> None:
    async with proxy(lab) as p:
        backend = p.backend
        assert isinstance(backend, NftablesBackend)
        assert await backend.counters() == {}  # no table yet: the kernel says ENOENT
        p.on_service_add(service("web", VIP, WEB))
        p.on_endpointslice_add(slice_of("web", PODS))
        await p.sync()
        first = await backend.counters()
        assert first and not backend.counters_via_nft  # read over netlink
        await asyncio.to_thread(answered_by, lab, lab.client, VIP, 80, 6)
        assert await backend.counters() is first  # within MAX_AGE: one kernel dump serves every scraper
        fresh_reads(backend)
        counts = await backend.counters()
        assert sum(by_endpoint(counts, (VIP, "TCP", 80)).values()) == 6
        backend.counters_via_nft = True  # as after a netlink failure: `nft -j list set` reads the same
        assert await backend.counters() == counts
        p.need_full = True
        await p.sync()
        assert sum(by_endpoint(await backend.counters(), (VIP, "TCP", 80)).values()) == 0  # documented reset


async def test_counting_off_leaves_the_set_empty_and_the_chain_out(lab: Lab) -> None:
    async with proxy(lab) as p:
        backend = p.backend
        assert isinstance(backend, NftablesBackend)
        backend.cfg = dataclasses.replace(backend.cfg, counters=False)
        p.on_service_add(service("web", VIP, WEB))
        p.on_endpointslice_add(slice_of("web", PODS))
        await p.sync()
        seen = await asyncio.to_thread(answered_by, lab, lab.client, VIP, 80, 6)
        assert sum(seen.values()) == 6
        assert await backend.counters() == {}
        ruleset = lab.sh(lab.node, "nft", "list", "table", "ip", "nanokube")
        assert "count-connections" not in ruleset and "counter packets" not in ruleset


async def test_a_host_connection_to_a_local_endpoint_counts_once(lab: Lab) -> None:
    """Such a connection passes the counting hook twice while new (output, then prerouting from lo); the API
    server behind the `kubernetes` Service is one of these."""
    listener = lab.socket(lab.node)
    listener.bind((NODE_IP, 8081))
    listener.listen(64)

    def serve(n: int) -> None:
        for _ in range(n):
            conn, _ = listener.accept()
            conn.close()

    async with proxy(lab) as p:
        backend = p.backend
        assert isinstance(backend, NftablesBackend)
        fresh_reads(backend)
        p.on_service_add(service("api", "10.96.0.42", [{"name": "https", "port": 443, "targetPort": 8081}]))
        p.on_endpointslice_add(slice_of("api", [NODE_IP], ports=[{"name": "https", "port": 8081}]))
        await p.sync()
        server = asyncio.create_task(asyncio.to_thread(serve, 8))
        for ns in (lab.node,) * 5 + (lab.client,) * 3:
            with lab.socket(ns) as s:
                await asyncio.to_thread(s.connect, ("10.96.0.42", 443))
        await server
        listener.close()
        assert by_endpoint(await backend.counters(), ("10.96.0.42", "TCP", 443)) == {f"{NODE_IP}:8081": 8}
