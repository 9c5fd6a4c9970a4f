"""Unit tests of the runner, trackers, endpoint choice and element mirror (pure, no root)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from tests.proxy.objects import endpoint, endpoint_slice, service

from nanokube.aio.runner import BoundedFrequencyRunner
from nanokube.proxy.conntrack import parse_udp_entries, serving_udp_endpoints, stale_udp_entries
from nanokube.proxy.elements import ElementMirror
from nanokube.proxy.model import Endpoint, service_ports
from nanokube.proxy.plan import DROP, REJECT, categorize
from nanokube.proxy.state import ProxyState
from nanokube.proxy.trackers import EndpointsChangeTracker, ServiceChangeTracker

# -- runner -------------------------------------------------------------------------------------------


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.mark.looptime  # loop time runs as fast as the runner lets it: no real sleeps
async def test_runner_coalesces_requests_and_respects_min_interval() -> None:
    runs: list[float] = []
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    async def fn() -> None:
        runs.append(loop.time())
        if len(runs) == 2:
            done.set()

    runner = BoundedFrequencyRunner(fn, name="t", min_interval=0.2, max_interval=10)
    task = asyncio.create_task(runner.run())
    for _ in range(50):
        runner.request()
    await asyncio.sleep(0)  # let the first run start
    await asyncio.sleep(0.01)
    for _ in range(50):
        runner.request()
    await asyncio.wait_for(done.wait(), 2)
    await stop(task)
    assert len(runs) == 2
    assert runs[1] - runs[0] >= 0.19


@pytest.mark.looptime  # loop time runs as fast as the runner lets it: no real sleeps
async def test_runner_runs_at_max_interval_without_requests() -> None:
    count = 0
    three = asyncio.Event()

    async def fn() -> None:
        nonlocal count
        count += 1
        if count == 3:
            three.set()

    runner = BoundedFrequencyRunner(fn, name="t", min_interval=0, max_interval=0.05)
    started = asyncio.get_running_loop().time()
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(three.wait(), 2)
    await stop(task)
    assert asyncio.get_running_loop().time() - started >= 0.095  # runs 2 and 3 came max_interval apart


@pytest.mark.looptime  # loop time runs as fast as the runner lets it: no real sleeps
async def test_runner_retries_after_failure_with_backoff() -> None:
    attempts: list[float] = []
    ok = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def fn() -> None:
        attempts.append(loop.time())
        if len(attempts) < 3:
            raise RuntimeError("boom")
        ok.set()

    runner = BoundedFrequencyRunner(fn, name="t", min_interval=0, max_interval=10, retry_initial=0.05)
    task = asyncio.create_task(runner.run())
    runner.request()
    await asyncio.wait_for(ok.wait(), 2)
    await stop(task)
    assert runner.failures_total == 2 and not runner.failing
    assert attempts[1] - attempts[0] >= 0.045 and attempts[2] - attempts[1] >= 0.095


def test_runner_rejects_bad_intervals() -> None:
    async def fn() -> None: ...
    with pytest.raises(ValueError):
        BoundedFrequencyRunner(fn, name="t", min_interval=5, max_interval=1)


# -- trackers -------------------------------------------------------------------------------------------


def test_service_tracker_keeps_first_previous_and_collapses_noops() -> None:
    t = ServiceChangeTracker()
    v1 = service("web", "10.96.0.10", [{"port": 80}])
    v2 = service("web", "10.96.0.10", [{"port": 81}], rv="2")
    v3 = service("web", "10.96.0.10", [{"port": 80}], rv="3")
    assert t.update(None, v1)
    assert t.update(v1, v2)
    changes = t.checkout()
    assert list(changes) == ["default/web"]
    prev, cur = changes["default/web"]
    assert prev == {} and [i.port for i in cur.values()] == [81]
    t.update(v2, v3)
    assert t.update(v3, v2) is False  # back to the synced state: nothing pending
    assert t.checkout() == {}
    # metadata-only changes are no-ops
    v4 = service("web", "10.96.0.10", [{"port": 81}], rv="9")
    assert t.update(v2, v4) is False


def test_headless_and_externalname_services_are_not_proxied() -> None:
    assert service_ports(service("h", "None", [{"port": 80}])) == {}
    ext = service("e", "", [{"port": 80}], type="ExternalName")
    assert service_ports(ext) == {}


def test_only_vip_mode_load_balancer_ingress_is_programmed() -> None:
    svc = service("web", "10.96.0.10", [{"port": 80, "nodePort": 31111}], type="LoadBalancer",
                  lb_ips=("10.250.0.5", "10.250.0.6"))
    svc["status"]["loadBalancer"]["ingress"][1]["ipMode"] = "Proxy"  # the LB delivers to the node: not ours
    del svc["status"]["loadBalancer"]["ingress"][0]["ipMode"]  # unset means VIP
    (info,) = service_ports(svc).values()
    assert info.lb_ips == ("10.250.0.5",)


def test_conntrack_reconcile_finds_flows_to_non_serving_endpoints_as_kube_proxy() -> None:
    listing = (
        "udp      17 29 src=10.0.0.9 dst=10.96.0.10 sport=40000 dport=53 src=10.244.0.5 dst=10.0.0.9 sport=8053 "
        "dport=40000 [ASSURED] mark=0 use=1\n"
        "udp      17 28 src=10.0.0.9 dst=10.96.0.10 sport=40001 dport=53 src=10.244.0.6 dst=10.0.0.9 sport=8053 "
        "dport=40001 mark=0 use=1\n"
        "udp      17 27 src=10.0.0.9 dst=192.168.1.2 sport=40002 dport=30053 [UNREPLIED] src=10.244.0.7 "
        "dst=10.0.0.9 sport=8053 dport=40002 mark=0 use=1\n"
        "udp      17 27 src=10.0.0.9 dst=10.96.0.11 sport=40003 dport=53 [UNREPLIED] src=10.96.0.11 "
        "dst=10.0.0.9 sport=53 dport=40003 mark=0 use=1\n"
        "tcp      6 431999 ESTABLISHED src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2\n")
    entries = list(parse_udp_entries(listing))
    assert entries[0] == ("10.96.0.10", 53, "10.244.0.5") and len(entries) == 4
    state = ProxyState(node_name="node-a", nodeport_ips=("192.168.1.2",))
    dns = service("dns", "10.96.0.10", [{"port": 53, "protocol": "UDP", "nodePort": 30053}], type="NodePort")
    empty = service("empty", "10.96.0.11", [{"port": 53, "protocol": "UDP"}])
    slices = EndpointsChangeTracker()
    slices.update(None, endpoint_slice("dns", [endpoint("10.244.0.6")], [{"port": 8053, "protocol": "UDP"}]))
    changes = state.apply({"default/dns": ({}, service_ports(dns)), "default/empty": ({}, service_ports(empty))},
                          slices.checkout())
    plans = [p for _, new in changes.values() for p in new]
    # .5 is no longer an endpoint; .7 answered on the node port; the endpoint-less service is left alone
    assert stale_udp_entries(entries, serving_udp_endpoints(plans)) == {("10.96.0.10", 53, "10.244.0.5"), (None, 30053, "10.244.0.7")}


def test_endpoints_tracker_merges_slices_and_collapses() -> None:
    t = EndpointsChangeTracker()
    ports = [{"name": "http", "port": 8080}]
    a = endpoint_slice("web", [endpoint("10.244.0.11")], ports, name="web-a")
    b = endpoint_slice("web", [endpoint("10.244.0.12"), endpoint("10.244.0.11")], ports, name="web-b")
    t.update(None, a)
    t.update(None, b)
    (prev, cur), = t.checkout().values()
    assert prev == {}
    assert [ep.ip for ep in cur["http", "TCP"]] == ["10.244.0.11", "10.244.0.12"]
    t.update(b, None)
    t.update(None, b)
    assert t.checkout() == {}


def test_endpoint_categories_follow_kubernetes() -> None:
    def ep(ip: str, ready: bool, serving: bool, term: bool, node: str) -> Endpoint:
        return Endpoint(ip, 80, ready, serving, term, node)

    eps = (ep("1.0.0.1", True, True, False, "a"), ep("1.0.0.2", False, True, True, "b"),
           ep("1.0.0.3", False, False, False, "a"))
    cluster, local = categorize(eps, "b")
    assert [e.ip for e in cluster] == ["1.0.0.1"]
    assert [e.ip for e in local] == ["1.0.0.2"]  # no ready local endpoint: serving+terminating fallback
    cluster, local = categorize(eps[1:], "a")
    assert [e.ip for e in cluster] == ["1.0.0.2"] and local == ()


def test_plan_verdicts_for_missing_endpoints() -> None:
    state = ProxyState(node_name="node-a", nodeport_ips=("192.168.1.2",))
    svc = service("web", "10.96.0.10", [{"port": 80, "nodePort": 31111}], type="LoadBalancer",
                  lb_ips=("10.250.0.5",), etp="Local")
    ports = [{"port": 8080}]
    changes = state.apply({"default/web": ({}, service_ports(svc))}, {})
    (plan,) = changes["default/web"][1]
    assert {fe.kind: fe.no_endpoints for fe in plan.frontends} == {
        "cluster": REJECT, "external": REJECT, "nodeport": REJECT}
    eps = EndpointsChangeTracker()
    eps.update(None, endpoint_slice("web", [endpoint("10.244.1.5", node="node-b")], ports))
    (plan,) = state.apply({}, eps.checkout())["default/web"][1]
    assert {fe.kind: fe.no_endpoints for fe in plan.frontends} == {"cluster": "", "external": DROP, "nodeport": DROP}


# -- element mirror ------------------------------------------------------------------------------------


def test_mirror_refcounts_shared_elements_and_diffs_values() -> None:
    m = ElementMirror()
    d, a = m.set_owner("a", {("cluster-ips", "10.0.0.1"): "", ("service-ips", "k1"): "goto pick-2"})
    assert d == {} and set(a) == {("cluster-ips", "10.0.0.1"), ("service-ips", "k1")}
    d, a = m.set_owner("b", {("cluster-ips", "10.0.0.1"): ""})
    assert d == {} and a == {}
    d, a = m.set_owner("a", {("service-ips", "k1"): "goto pick-3"})
    assert d == {("service-ips", "k1"): "goto pick-2"} and a == {("service-ips", "k1"): "goto pick-3"}
    d, a = m.set_owner("b", {})
    assert d == {("cluster-ips", "10.0.0.1"): ""} and a == {}
    assert len(m) == 1
