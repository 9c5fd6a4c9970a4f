"""UDP conntrack cleanup: no flow keeps going to an endpoint that is gone.

UDP has no connection teardown, so a conntrack entry DNATed to a removed endpoint lives on as long as the
client keeps sending (Kubernetes issues #19029 ... #139628). After each sync, entries of a UDP frontend
whose reply source is no longer one of its endpoints are deleted, and so are un-DNATed entries of a
frontend that just got its first endpoints.

A full sync (start, restart after a crash, after a failure) cannot know what changed while nobody watched, so it
reconciles the whole table as kube-proxy's CleanStaleEntries (pkg/proxy/conntrack/cleanup.go) does: every UDP
entry to a service address:port, or to a node port on any address, whose reply source is not one of that service
port's serving endpoints is deleted; service ports without endpoints are left alone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator

from nanokube.proxy.commands import Commands
from nanokube.proxy.plan import Frontend, ServicePortPlan

log = logging.getLogger(__name__)


def _frontends(plans: tuple[ServicePortPlan, ...]) -> dict[tuple[str, str, int], Frontend]:
    return {fe.key: fe for plan in plans for fe in plan.frontends if fe.protocol == "UDP"}


def stale_udp_flows(old: tuple[ServicePortPlan, ...],
                    new: tuple[ServicePortPlan, ...]) -> list[tuple[str, int, str | None]]:
    """(frontend ip, port, endpoint ip to forget | None for 'everything to this frontend')."""
    before, after = _frontends(old), _frontends(new)
    out: list[tuple[str, int, str | None]] = []
    for key, fe in before.items():
        now = after.get(key)
        old_ips = {ep.ip for ep in (*fe.endpoints, *fe.cluster_endpoints)}
        new_ips = {ep.ip for ep in (*now.endpoints, *now.cluster_endpoints)} if now else set()
        out += [(fe.ip, fe.port, ip) for ip in sorted(old_ips - new_ips)]
    for key, fe in after.items():
        prev = before.get(key)
        if fe.endpoints and (prev is None or not prev.endpoints):
            out.append((fe.ip, fe.port, None))
    return out


async def delete_udp_flows(commands: Commands, flows: list[tuple[str, int, str | None]]) -> None:
    for ip, port, endpoint in flows:
        argv = ["conntrack", "-D", "-p", "udp", "--orig-dst", ip, "--dport", str(port)]
        if endpoint is not None:
            argv += ["--reply-src", endpoint]
        # conntrack exits 1 when nothing matched; that is the common case, not an error.
        await commands.run(argv, check=False)


_TUPLE_FIELD = re.compile(r"\b(src|dst|sport|dport)=(\S+)")
UdpEntry = tuple[str, int, str]  # (original destination, original destination port, reply source)


def parse_udp_entries(listing: str) -> Iterator[UdpEntry]:
    """Entries of `conntrack -L -p udp` text: the first src/dst/sport/dport are the original tuple, the next
    four the reply tuple."""
    for line in listing.splitlines():
        fields = _TUPLE_FIELD.findall(line)
        if len(fields) < 8:
            continue
        orig, reply = dict(fields[:4]), dict(fields[4:8])
        try:
            yield orig["dst"], int(orig["dport"]), reply["src"]
        except (KeyError, ValueError):
            continue


ServingIndex = tuple[dict[tuple[str, int], set[str]], dict[int, set[str]]]


def serving_udp_endpoints(plans: Iterable[ServicePortPlan]) -> ServingIndex:
    """The serving endpoint IPs of every UDP service port that has some: by (service address, port), and by node
    port (any address)."""
    by_address: dict[tuple[str, int], set[str]] = {}
    by_node_port: dict[int, set[str]] = {}
    for plan in plans:
        udp = [fe for fe in plan.frontends if fe.protocol == "UDP"]
        serving = {ep.ip for ep in plan.endpoints} if udp else set()
        if not serving:
            continue
        for fe in udp:
            if fe.kind == "nodeport":
                by_node_port[fe.port] = serving
            else:
                by_address[(fe.ip, fe.port)] = serving
    return by_address, by_node_port


def stale_udp_entries(entries: Iterable[UdpEntry], index: ServingIndex) -> set[tuple[str | None, int, str]]:
    """(service address | None for a node port on any address, port, reply source to forget)."""
    by_address, by_node_port = index
    out: set[tuple[str | None, int, str]] = set()
    for dst, port, reply_src in entries:
        serving = by_address.get((dst, port))
        if serving is not None and reply_src not in serving:
            out.add((dst, port, reply_src))
        serving = by_node_port.get(port)
        if serving is not None and reply_src not in serving:
            out.add((None, port, reply_src))
    return out


async def reconcile_udp_flows(commands: Commands, plans: Iterable[ServicePortPlan]) -> int:
    """Delete every stale UDP flow of the whole table (full syncs); returns how many filters were applied."""
    index = serving_udp_endpoints(plans)
    if not any(index):
        return 0  # no UDP service port with endpoints (the usual start-up): no table to read
    try:
        listing = await commands.run(["conntrack", "-L", "-p", "udp"], check=False)
    except OSError as err:  # no conntrack tool: the incremental cleanup has the same need, it is logged there too
        log.warning("conntrack: cannot list UDP flows: %s", err)
        return 0
    stale = stale_udp_entries(parse_udp_entries(listing), index)
    for dst, port, reply_src in sorted(stale, key=lambda t: (t[0] or "", t[1], t[2])):
        argv = ["conntrack", "-D", "-p", "udp", "--dport", str(port), "--reply-src", reply_src]
        if dst is not None:
            argv += ["--orig-dst", dst]
        await commands.run(argv, check=False)
    if stale:
        log.info("conntrack: removed UDP flows of %d stale service endpoints", len(stale))
    return len(stale)
