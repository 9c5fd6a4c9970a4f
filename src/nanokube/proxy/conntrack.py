"""UDP conntrack cleanup: no flow keeps going to an endpoint that is gone.

UDP has no connection teardown, so a conntrack entry DNATed to a removed endpoint lives on as long as the
client keeps sending (Kubernetes issues #19029 ... #139628). After each sync, entries of a UDP frontend
whose reply source is no longer one of its endpoints are deleted, and so are un-DNATed entries of a
frontend that just got its first endpoints.
"""

from __future__ import annotations

import logging

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
