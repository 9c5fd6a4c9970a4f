"""A packet tracer over the rendered `nft -f` text of table `ip nanokube` (no root, no kernel).

It understands exactly the rule shapes the renderer emits and fails loudly on any other, so a change of
shape has to come with a change here. A trace answers: which endpoints a new connection can reach (all
numgen outcomes), whether it is masqueraded, or REJECT / DROP / ACCEPT (untouched).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

LOOKUP = "ip daddr . meta l4proto . th dport"


@dataclass
class Trace:
    verdict: str  # "DNAT" | "REJECT" | "DROP" | "ACCEPT"
    endpoints: set[str] = field(default_factory=set)  # "ip:port"
    masquerade: bool = False


@dataclass
class Packet:
    src: str
    dst: str
    proto: str  # "tcp" | "udp"
    dport: int
    from_node: bool = False  # sent by a process on the node (output hook) rather than arriving (prerouting)


def _in(addr: str, spec: str) -> bool:
    if "-" in spec:
        lo, hi = spec.split("-")
        return ipaddress.ip_address(lo) <= ipaddress.ip_address(addr) <= ipaddress.ip_address(hi)
    return ipaddress.ip_address(addr) in ipaddress.ip_network(spec, strict=False)


class Ruleset:
    def __init__(self, script: str, *, local_addrs: set[str]) -> None:
        self.local_addrs = local_addrs
        self.chains: dict[str, list[str]] = {}
        self.elements: dict[str, dict[str, str]] = {}
        self.affinity: dict[str, str] = {}
        self.apply(script)

    def apply(self, script: str) -> None:
        """Apply a full or incremental transaction (add/delete chain, rule, element)."""
        for line in script.splitlines():
            if not line.strip():
                continue
            if m := re.fullmatch(r"add (?:map|set) ip nanokube (\S+) \{.*\}", line):
                self.elements.setdefault(m[1], {})
            elif m := re.fullmatch(r"add chain ip nanokube (\S+)( \{.*\})?", line):
                self.chains.setdefault(m[1], [])
            elif m := re.fullmatch(r"add rule ip nanokube (\S+) (.*)", line):
                self.chains[m[1]].append(m[2])
            elif m := re.fullmatch(r"(add|delete) element ip nanokube (\S+) \{ (.*) \}", line):
                target = self.elements[m[2]]
                for item in m[3].split(", "):
                    key, _, value = item.partition(" : ")
                    if m[1] == "add":
                        if key in target and target[key] != value:
                            raise AssertionError(f"add of existing element {key} with another value")
                        target[key] = value
                    else:
                        if key not in target:
                            raise AssertionError(f"delete of missing element {key} in {m[2]}")
                        del target[key]
            elif line in ("add table ip nanokube", "delete table ip nanokube") or line.startswith("add table"):
                if line.startswith("delete"):
                    self.chains.clear()
                    self.elements.clear()
            else:
                raise AssertionError(f"tracer does not understand: {line}")

    # -- evaluation ---------------------------------------------------------------------------------------
    def trace(self, pkt: Packet) -> Trace:
        self._mark = False
        self._results: set[str] = set()
        self._dnat_done = False
        pre_dnat = "filter-output-pre-dnat" if pkt.from_node else "filter-prerouting-pre-dnat"
        if pre_dnat in self.chains and (verdict := self._filter(pre_dnat, pkt)) != "ACCEPT":
            return Trace(verdict)
        self._run("nat-output" if pkt.from_node else "nat-prerouting", pkt)
        if self._results:
            masq = self._mark
            hairpin = {ep.split(":")[0] for ep in self._results if f"{pkt.src} . {ep.split(':')[0]}" in
                       self.elements["hairpin"]}
            return Trace("DNAT", set(self._results), masq or bool(hairpin))
        hook = "filter-output" if pkt.from_node else (
            "filter-input" if pkt.dst in self.local_addrs else "filter-forward")
        verdict = self._filter(hook, pkt)
        return Trace(verdict)

    def _key(self, pkt: Packet) -> str:
        return f"{pkt.dst} . {pkt.proto} . {pkt.dport}"

    def _run(self, chain: str, pkt: Packet) -> str | None:
        """Evaluate a nat chain; returns "stop" after a terminal statement (goto result or dnat)."""
        for rule in self.chains[chain]:
            out = self._nat_rule(rule, pkt)
            if out == "stop":
                return "stop"
        return None

    def _follow(self, verdict: str, pkt: Packet) -> str | None:
        kind, _, target = verdict.partition(" ")
        if kind == "jump":
            self._run(target, pkt)
            return None
        if kind == "goto":
            self._run(target, pkt)
            return "stop"
        raise AssertionError(f"unexpected verdict {verdict} in nat")

    def _nat_rule(self, rule: str, pkt: Packet) -> str | None:
        els = self.elements
        if rule in ("jump services", "jump masquerading"):
            return self._follow(rule, pkt)
        if m := re.fullmatch(r"ip saddr != (\S+) ip daddr @cluster-ips jump mark-for-masquerade", rule):
            if pkt.dst in els["cluster-ips"] and not _in(pkt.src, m[1]):
                self._mark = True
            return None
        if m := re.fullmatch(rf"{re.escape(LOOKUP)} @(\S+) (fib saddr type local )?jump mark-for-masquerade", rule):
            if (not m[2] or pkt.from_node) and self._key(pkt) in els[m[1]]:
                self._mark = True
            return None
        if rule == "dnat ip to ip saddr . ip daddr . meta l4proto . th dport map @affinity":
            hit = self.affinity.get(f"{pkt.src} . {self._key(pkt)}")
            if hit:
                self._results.add(hit.replace(" . ", ":"))
                return "stop"
            return None
        if m := re.fullmatch(rf"(?:ip saddr (\S+) |(fib saddr type local ))?{re.escape(LOOKUP)} vmap @(\S+)", rule):
            if m[1] and not _in(pkt.src, m[1]):
                return None
            if m[2] and not pkt.from_node:
                return None
            verdict = els[m[3]].get(self._key(pkt))
            return self._follow(verdict, pkt) if verdict else None
        if m := re.fullmatch(r"meta l4proto (\w+) dnat ip to ip daddr \. meta l4proto \. (\w+) dport \. "
                             r"numgen random mod (\d+)(?: offset (\d+))? map @endpoints-(\w+)", rule):
            assert m[1] == m[2] == m[5], rule
            if pkt.proto != m[1]:
                return None
            n, off = int(m[3]), int(m[4] or 0)
            for b in range(off, off + n):
                target = els[f"endpoints-{m[1]}"].get(f"{self._key(pkt)} . {b}")
                if target is None:
                    raise AssertionError(f"numgen bucket {b} of {self._key(pkt)} has no endpoint")
                self._results.add(target.replace(" . ", ":"))
            return "stop"
        if m := re.fullmatch(r"goto (\S+)", rule):
            return self._follow(rule, pkt)
        raise AssertionError(f"tracer does not understand nat rule: {rule}")

    def _filter(self, chain: str, pkt: Packet) -> str:
        for rule in self.chains[chain]:
            # the tracer reaches the filter hooks only for packets that were not DNATed
            if m := re.fullmatch(r"ct state new (?:ct status & dnat == 0 )?jump (\S+)", rule):
                out = self._filter(m[1], pkt)
                if out != "ACCEPT":
                    return out
                continue
            if rule == f"{LOOKUP} vmap @no-endpoint-services":
                verdict = self.elements["no-endpoint-services"].get(self._key(pkt))
                if verdict == "goto reject-chain":
                    return "REJECT"
                if verdict == "drop":
                    return "DROP"
                if verdict is not None:
                    raise AssertionError(verdict)
                continue
            if rule == f"{LOOKUP} @firewall {LOOKUP} . ip saddr != @firewall-allow drop":
                key = self._key(pkt)
                if key in self.elements["firewall"] and not any(
                        k.rpartition(" . ")[0] == key and _in(pkt.src, k.rpartition(" . ")[2])
                        for k in self.elements["firewall-allow"]):
                    return "DROP"
                continue
            if rule == "ip daddr @cluster-ips goto reject-chain":
                if pkt.dst in self.elements["cluster-ips"]:
                    return "REJECT"
                continue
            if m := re.fullmatch(r"ip daddr (\S+) drop", rule):
                if _in(pkt.dst, m[1]):
                    return "DROP"
                continue
            if m := re.fullmatch(r"ip daddr (\S+) fib daddr type != local drop", rule):
                if _in(pkt.dst, m[1]) and pkt.dst not in self.local_addrs:
                    return "DROP"
                continue
            if m := re.fullmatch(r"ip daddr (\S+) ip daddr != @external-ips drop", rule):
                if _in(pkt.dst, m[1]) and pkt.dst not in self.elements["external-ips"]:
                    return "DROP"
                continue
            raise AssertionError(f"tracer does not understand filter rule: {rule}")
        return "ACCEPT"
