"""nftables backend: programs table `ip nanokube` from plans, one `nft -f -` transaction per sync.

A full sync replaces the table atomically (`add table; delete table; <everything>` in one transaction,
so the nat hooks stay registered and established connections keep their translation). An incremental
sync adds/deletes only the elements of the Services that changed, plus any new pick-N style chain.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging

from nanokube.proxy.commands import CommandError, Commands, enter_netns
from nanokube.proxy.conntrack import delete_udp_flows, reconcile_udp_flows, stale_udp_flows
from nanokube.proxy.elements import ElementMirror, ExclusiveGroups
from nanokube.proxy.hostnet import HostNetwork
from nanokube.proxy.model import ServicePortName
from nanokube.proxy.nftcounters import LIST_COMMAND, CounterReader, Counts, parse_counters
from nanokube.proxy.nftnetlink import NetlinkError, SetCounterDump
from nanokube.proxy.nftrules import (
    COUNTERS_SET,
    FAMILY,
    TABLE,
    Elements,
    NetConfig,
    base_ruleset,
    chains_needed,
    counter_elements,
    dynamic_chain,
    element_commands,
    firewall_elements,
    plan_elements,
)
from nanokube.proxy.plan import ServicePortPlan
from nanokube.proxy.state import PlanChange

log = logging.getLogger(__name__)


def _declare_then_fill(chains: list[str], cfg: NetConfig) -> list[str]:
    """All chain declarations before any rule, since local-N rules jump to pick-N."""
    bodies = [dynamic_chain(name, cfg) for name in chains]
    return [b[0] for b in bodies] + [line for b in bodies for line in b[1:]]


def render_full(cfg: NetConfig, mirror: ElementMirror) -> tuple[str, set[str]]:
    """The whole table as one transaction that replaces any previous copy; also the dynamic chains made."""
    elements = mirror.all()
    chains = sorted(chains_needed(elements.values()))
    lines = [f"add table {FAMILY} {TABLE}", f"delete table {FAMILY} {TABLE}", *base_ruleset(cfg)]
    lines += _declare_then_fill(chains, cfg)
    lines += element_commands("add", elements)
    return "\n".join(lines) + "\n", set(chains)


def render_incremental(cfg: NetConfig, chains: set[str], deletes: Elements, adds: Elements) -> tuple[str, set[str]]:
    new_chains = sorted(chains_needed(adds.values()) - chains)
    lines = _declare_then_fill(new_chains, cfg)
    lines += element_commands("delete", deletes)
    lines += element_commands("add", adds)
    return ("\n".join(lines) + "\n" if lines else ""), set(new_chains)


class NftablesBackend:
    def __init__(self, *, cfg: NetConfig, hostnet: HostNetwork | None, commands: Commands) -> None:
        self.cfg = cfg
        self.hostnet = hostnet
        self.commands = commands
        self.mirror = ElementMirror()
        self.firewalls = ExclusiveGroups()
        self.chains: set[str] = set()
        self.unserved: dict[tuple[str, str, int], str] = {}  # never any: the kernel serves every frontend
        self.last_script = ""
        netns = commands.netns
        self.counter_dump = SetCounterDump((lambda: enter_netns(netns)) if netns else None)
        self.counter_reader = CounterReader(self._read_counters)
        self.counters_via_nft = False  # set when the netlink dump failed (other than "no such table"): use nft

    def _elements(self, plan: ServicePortPlan) -> Elements:
        elements = plan_elements(plan)
        if self.cfg.counters:
            elements.update(counter_elements(plan))
        return elements

    def _set_plan(self, owner: ServicePortName, plan: ServicePortPlan | None) -> list[tuple[Elements, Elements]]:
        """Record a service port's elements (None = gone); the (deletes, adds) diffs it causes."""
        diffs = [self.mirror.set_owner(owner, self._elements(plan) if plan else {})]
        winners = self.firewalls.set_owner(owner, firewall_elements(plan) if plan else {})
        diffs += [self.mirror.set_owner(("firewall", group), elements) for group, elements in winners.items()]
        return diffs

    def _lb_ips(self) -> set[str]:
        return {key for (name, key) in self.mirror.all() if name == "external-ips"}

    async def full_sync(self, plans: dict[str, tuple[ServicePortPlan, ...]]) -> None:
        self.mirror = ElementMirror()
        self.firewalls = ExclusiveGroups()
        for service_plans in plans.values():
            for plan in service_plans:
                self._set_plan(plan.name, plan)
        script, self.chains = render_full(self.cfg, self.mirror)
        self.last_script = script
        await self.commands.nft(script)
        self.counter_reader.forget()
        if self.hostnet:
            await self.hostnet.sync(self._lb_ips())
        await reconcile_udp_flows(self.commands, (p for service_plans in plans.values() for p in service_plans))

    async def apply(self, changes: dict[str, PlanChange]) -> None:
        deletes: Elements = {}
        adds: Elements = {}
        affinity_fix: list[tuple[ServicePortPlan, ...]] = []
        for old, new in changes.values():
            new_names = {p.name for p in new}
            for plan in old:
                if plan.name not in new_names:
                    for diff in self._set_plan(plan.name, None):
                        self._merge(deletes, adds, *diff)
            for plan in new:
                for diff in self._set_plan(plan.name, plan):
                    self._merge(deletes, adds, *diff)
            if any(fe.affinity_timeout for p in old for fe in p.frontends):
                affinity_fix.append(new)
        script, new_chains = render_incremental(self.cfg, self.chains, deletes, adds)
        if script:
            self.last_script = script
            await self.commands.nft(script, in_process=True)
            self.chains |= new_chains
        if self.hostnet and any(k[0] == "external-ips" for k in (*deletes, *adds)):
            await self.hostnet.sync(self._lb_ips())
        if affinity_fix:
            await self._forget_stale_affinity([p for plans in affinity_fix for p in plans],
                                              [p for old, _ in changes.values() for p in old])
        flows = [f for old, new in changes.values() for f in stale_udp_flows(old, new)]
        if flows:
            await delete_udp_flows(self.commands, flows)

    @staticmethod
    def _merge(deletes: Elements, adds: Elements, d: Elements, a: Elements) -> None:
        for k, v in d.items():
            if adds.pop(k, None) is None:  # added earlier in this same sync: cancel instead of delete
                deletes[k] = v
        for k, v in a.items():
            adds[k] = v

    async def _forget_stale_affinity(self, new: list[ServicePortPlan], old: list[ServicePortPlan]) -> None:
        """Delete affinity entries of changed frontends whose endpoint is no longer one of theirs."""
        allowed: dict[str, set[str]] = {}
        for plan in new:
            for fe in plan.frontends:
                if fe.affinity_timeout:
                    key = f"{fe.ip} . {fe.protocol.lower()} . {fe.port}"
                    allowed[key] = {f"{ep.ip} . {ep.port}" for ep in fe.endpoints}
        watched = {f"{fe.ip} . {fe.protocol.lower()} . {fe.port}" for p in old for fe in p.frontends}
        out = await self.commands.run(["nft", "-j", "list", "map", FAMILY, TABLE, "affinity"])
        stale: list[str] = []
        for item in json.loads(out).get("nftables", []):
            for elem in (item.get("map") or {}).get("elem", []):
                key_parts = elem[0]["concat"] if isinstance(elem[0], dict) else elem[0]
                if isinstance(key_parts, dict):
                    key_parts = key_parts.get("elem", {}).get("val", {}).get("concat", [])
                value = elem[1]["concat"]
                client, vip, proto, port = key_parts
                fkey = f"{vip} . {proto} . {port}"
                if fkey in watched and f"{value[0]} . {value[1]}" not in allowed.get(fkey, set()):
                    stale.append(f"{client} . {fkey}")
        if stale:
            await self.commands.run(["nft", "-f", "-"], input=f"delete element {FAMILY} {TABLE} affinity "
                                                              f"{{ {', '.join(stale)} }}\n", check=False)

    async def _read_counters(self) -> Counts:
        if not self.counters_via_nft:
            try:
                return await asyncio.to_thread(self.counter_dump.read, TABLE, COUNTERS_SET)
            except NetlinkError as err:
                if err.errno == errno.ENOENT:  # no table (yet): nothing counted
                    return {}
                log.warning("proxy: dumping the connection counters over netlink failed (%s); using nft", err)
                self.counters_via_nft = True
            except OSError as err:
                log.warning("proxy: dumping the connection counters over netlink failed (%s); using nft", err)
                self.counters_via_nft = True
        return parse_counters(await self.commands.list_json(LIST_COMMAND))

    async def counters(self) -> Counts:
        """New connections per frontend and endpoint since each element was added (the status endpoint's
        /counters and /metrics); {} before the first sync or with counting off."""
        if not self.cfg.counters:
            return {}
        try:
            return await self.counter_reader.read()
        except CommandError as err:  # no table yet, or removed from outside (the next periodic sync rebuilds it)
            log.debug("proxy: reading connection counters: %s", err)
            return {}

    async def intact(self) -> bool:
        """Is our table still there with its base chains? (Checked on periodic syncs without changes.)"""
        try:
            await self.commands.nft(f"list chain {FAMILY} {TABLE} nat-prerouting\n", in_process=True)
        except CommandError:
            return False
        return True

    async def stop(self) -> None:
        await self.commands.run(["nft", "delete", "table", FAMILY, TABLE], check=False)
        self.commands.close()
        self.counter_dump.close()
        if self.hostnet:
            await self.hostnet.remove()
