"""The nftables ruleset of table `ip nanokube`, rendered as `nft -f` text (pure, no I/O).

Shape: a fixed set of chains, and every Service
reduced to set/map elements, so a change to a Service is a handful of element adds/deletes and never
touches a chain. Kube-proxy instead writes a chain per service port and per endpoint; on this kernel that
makes one-element commits on a 10,000-Service table cost 150-200 ms and full loads 41 s.

* `service-ips`  vmap  daddr . proto . dport -> goto pick-N | goto local-N   (node ports are keyed by each
  node-port address, so ClusterIPs, LB IPs, externalIPs and node ports share one lookup)
* `endpoints-<proto>` map daddr . proto . dport . bucket -> endpoint addr . port; chain pick-N does
  `dnat ip to ip daddr . meta l4proto . tcp dport . numgen random mod N map @endpoints-tcp`. Buckets
  1024.. hold the Cluster-policy endpoints used by the Local-policy short-circuits (chain pickc-N).
* `local-N`      externalTrafficPolicy Local: pods and the node itself take the Cluster-policy endpoints
  (`cluster-shortcut` vmap), everyone else the N local ones; N = 0 falls through and is dropped.
* masquerade: mark 0x4000 for non-pod sources to a ClusterIP, for `external-masq` frontends
  (externalTrafficPolicy Cluster) and for the node itself on `external-local` ones; hairpin by the
  `hairpin` set (endpoint . endpoint) after DNAT. Plain `masquerade`, not kube-proxy's `fully-random`: with
  random SNAT ports, new SYNs from one busy client land on the pods' TIME_WAIT sockets of unrelated earlier
  connections, and since this kernel gives every connection a random TCP timestamp offset the pods drop them
  by PAWS; each costs the client a 1 s SYN retransmit. Measured (bench/RESULTS-proxy-datapath.md): new
  connections from an off-cluster client at 0.25 of a minimal DNAT with fully-random, 0.95 without.
  fully-random guards against two flows racing for one SNAT port at the same instant, which on one node needs
  two clients using the same source port at once; port preservation makes that rare.
* affinity: `affinity` is a kernel-updated timed map (client . frontend -> endpoint); after DNAT, new
  connections to a frontend in `affinity-services` go to chain affinity-T, which records the choice
  with timeout T; the next connection is DNATed from the map before the random choice.
* loadBalancerSourceRanges: `firewall` holds the LB frontends (daddr . proto . dport) that have ranges and
  the interval set `firewall-allow` the allowed (frontend . saddr-range) pairs; one fixed rule in chain
  firewall-check drops a new connection to a `firewall` frontend whose source is not allowed. It runs before
  DNAT (filter prerouting/output at -110, as kube-proxy's filter-*-pre-dnat), so it sees the LB IP.
  A frontend's ranges never overlap (collapsed in the plan) and only one service port writes them
  (elements.ExclusiveGroups), since the kernel rejects overlapping intervals.
* filter input/forward/output (priority 0, after DNAT): `no-endpoint-services` -> reject | drop for
  frontends without endpoints; a ClusterIP on an unexposed port -> reject; any other non-local address in
  the service CIDR, and unallocated LB-pool addresses -> drop.
* connection counters: `endpoint-connections` is a set with a counter per element (frontend . endpoint); chain
  count-connections looks every new DNATed connection up in it (after DNAT, so the element's counter counts
  that frontend's new connections to that endpoint) before affinity-check (once: not again in prerouting when
  a host process's connection to a local endpoint comes back in on lo). Only new connections pass there,
  so established packets pay nothing; the key names no bucket, so the element, and its count, survives an
  incremental sync that keeps the endpoint (a full sync rebuilds the table: counts restart at 0).
  `NetConfig.counters` False leaves the set empty and the chain out (NANOKUBE_PROXY_COUNTERS=0).
"""

from __future__ import annotations

from dataclasses import dataclass

from nanokube.proxy.plan import DROP, REJECT, Frontend, ServicePortPlan

TABLE = "nanokube"
FAMILY = "ip"
MASQ_BIT = "0x4000"
CLUSTER_BUCKET_OFFSET = 1024
AFFINITY_MAP_SIZE = 1048576
COUNTERS_SET = "endpoint-connections"

# map/set name -> declaration body (without braces)
MAPS: dict[str, str] = {
    "cluster-ips": "type ipv4_addr ;",
    "external-ips": "type ipv4_addr ;",
    "service-ips": "type ipv4_addr . inet_proto . inet_service : verdict ;",
    "no-endpoint-services": "type ipv4_addr . inet_proto . inet_service : verdict ;",
    # One endpoint map per protocol: with `th dport` in a typeof, nft 1.0.6 cannot add rules that use the map
    # in a later transaction ("conflicting protocols"), and `tcp dport` implies a tcp-only dependency.
    **{f"endpoints-{p}": f"typeof ip daddr . meta l4proto . {p} dport . numgen random mod 1 : ip daddr . {p} dport ;"
       for p in ("tcp", "udp", "sctp")},
    "cluster-shortcut": "type ipv4_addr . inet_proto . inet_service : verdict ;",
    "external-masq": "type ipv4_addr . inet_proto . inet_service ;",
    "external-local": "type ipv4_addr . inet_proto . inet_service ;",
    "hairpin": "type ipv4_addr . ipv4_addr ;",
    "affinity-services": "type ipv4_addr . inet_proto . inet_service : verdict ;",
    "firewall": "type ipv4_addr . inet_proto . inet_service ;",
    "firewall-allow": "type ipv4_addr . inet_proto . inet_service . ipv4_addr ; flags interval ;",
    COUNTERS_SET: "type ipv4_addr . inet_proto . inet_service . ipv4_addr . inet_service ; counter ;",
}
AFFINITY_DECL = ("type ipv4_addr . ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service ; "
                 f"flags dynamic,timeout ; size {AFFINITY_MAP_SIZE} ;")
IS_MAP = {name: ":" in decl for name, decl in MAPS.items()}

ElementKey = tuple[str, str]  # (map name, rendered key)
Elements = dict[ElementKey, str]  # value "" for plain sets


@dataclass(frozen=True)
class NetConfig:
    pod_cidr: str
    service_cidr: str
    lb_pool: str  # nft address expression: CIDR or A-B range; "" = none
    counters: bool = True  # count new connections per frontend and endpoint (endpoint-connections)


def _k(fe: Frontend) -> str:
    return f"{fe.ip} . {fe.protocol.lower()} . {fe.port}"


def frontend_elements(fe: Frontend) -> Elements:
    key = _k(fe)
    out: Elements = {}
    if fe.kind == "cluster":
        out["cluster-ips", fe.ip] = ""
    else:
        if fe.kind == "external":
            out["external-ips", fe.ip] = ""
        if fe.masquerade:
            out["external-masq", key] = ""
    if fe.no_endpoints == REJECT:
        out["no-endpoint-services", key] = "goto reject-chain"
        return out
    if fe.no_endpoints == DROP:
        out["no-endpoint-services", key] = "drop"
    endpoints = f"endpoints-{fe.protocol.lower()}"
    for i, ep in enumerate(fe.endpoints):
        out[endpoints, f"{key} . {i}"] = f"{ep.ip} . {ep.port}"
        out["hairpin", f"{ep.ip} . {ep.ip}"] = ""
    if fe.local_policy and fe.kind != "cluster":
        out["service-ips", key] = f"goto local-{len(fe.endpoints)}"
        out["external-local", key] = ""
        if fe.cluster_endpoints:
            out["cluster-shortcut", key] = f"goto pickc-{len(fe.cluster_endpoints)}"
            for i, ep in enumerate(fe.cluster_endpoints):
                out[endpoints, f"{key} . {CLUSTER_BUCKET_OFFSET + i}"] = f"{ep.ip} . {ep.port}"
                out["hairpin", f"{ep.ip} . {ep.ip}"] = ""
    elif fe.endpoints:
        out["service-ips", key] = f"goto pick-{len(fe.endpoints)}"
    if fe.affinity_timeout and fe.endpoints:
        out["affinity-services", key] = f"goto affinity-{fe.affinity_timeout}"
    return out


def _source(cidr: str) -> str:
    return cidr[:-3] if cidr.endswith("/32") else cidr


def firewall_elements(plan: ServicePortPlan) -> dict[str, Elements]:
    """loadBalancerSourceRanges elements, grouped by frontend key (one service port may own a frontend's)."""
    out: dict[str, Elements] = {}
    for fe in plan.frontends:
        if fe.source_ranges:
            key = _k(fe)
            group: Elements = {("firewall", key): ""}
            for cidr in fe.source_ranges:
                group["firewall-allow", f"{key} . {_source(cidr)}"] = ""
            out[key] = group
    return out


def counter_elements(plan: ServicePortPlan) -> Elements:
    """One counted element per frontend and endpoint it may DNAT to (Local policy's short-circuit ones too)."""
    out: Elements = {}
    for fe in plan.frontends:
        key = _k(fe)
        for ep in (*fe.endpoints, *fe.cluster_endpoints):
            out[COUNTERS_SET, f"{key} . {ep.ip} . {ep.port}"] = ""
    return out


def plan_elements(plan: ServicePortPlan) -> Elements:
    out: Elements = {}
    for fe in plan.frontends:
        out.update(frontend_elements(fe))
    return out


def chains_needed(values: object) -> set[str]:
    """Dynamic chains (pick-N, pickc-N, local-N, affinity-T) that element values jump to, with their own
    targets (local-N goes to pick-N)."""
    out: set[str] = set()
    for value in values:  # type: ignore[attr-defined]
        if value.startswith("goto ") and value != "goto reject-chain":
            name = value[5:]
            out.add(name)
            if name.startswith("local-") and name != "local-0":
                out.add("pick-" + name[6:])
    return out


def _rule(chain: str, rule: str) -> str:
    return f"add rule {FAMILY} {TABLE} {chain} {rule}"


def dynamic_chain(name: str, cfg: NetConfig) -> list[str]:
    kind, _, num = name.rpartition("-")
    n = int(num)
    lines = [f"add chain {FAMILY} {TABLE} {name}"]
    lookup = "ip daddr . meta l4proto . th dport"
    if kind in ("pick", "pickc"):
        offset = f" offset {CLUSTER_BUCKET_OFFSET}" if kind == "pickc" else ""
        for p in ("tcp", "udp", "sctp"):
            lines.append(_rule(name, f"meta l4proto {p} dnat ip to ip daddr . meta l4proto . {p} dport . "
                                     f"numgen random mod {n}{offset} map @endpoints-{p}"))
    elif kind == "local":
        lines.append(_rule(name, f"ip saddr {cfg.pod_cidr} {lookup} vmap @cluster-shortcut"))
        lines.append(_rule(name, f"fib saddr type local {lookup} vmap @cluster-shortcut"))
        if n:
            lines.append(_rule(name, f"goto pick-{n}"))
    elif kind == "affinity":
        for proto in ("tcp", "udp", "sctp"):
            lines.append(_rule(name, f"meta l4proto {proto} update @affinity {{ ip saddr . ct original ip daddr . "
                                     f"meta l4proto . ct original proto-dst timeout {n}s : ip daddr . th dport }}"))
    else:
        raise ValueError(f"unknown dynamic chain {name}")
    return lines


def base_ruleset(cfg: NetConfig) -> list[str]:
    """Table, maps, sets and fixed chains, without elements or dynamic chains."""
    t = f"{FAMILY} {TABLE}"
    lines = [f'add table {t} {{ comment "nanokube service proxy" ; }}']
    for name, decl in MAPS.items():
        kind = "map" if IS_MAP[name] else "set"
        lines.append(f"add {kind} {t} {name} {{ {decl} }}")
    lines.append(f"add map {t} affinity {{ {AFFINITY_DECL} }}")

    rule_lines: list[str] = []  # chains are all declared before any rule refers to them

    def chain(name: str, hook: str | None = None, *rules: str) -> None:
        lines.append(f"add chain {t} {name}" + (f" {{ {hook} ; policy accept ; }}" if hook else ""))
        rule_lines.extend(_rule(name, r) for r in rules)

    lookup = "ip daddr . meta l4proto . th dport"
    chain("mark-for-masquerade", None, f"meta mark set meta mark or {MASQ_BIT}")
    chain("masquerading", None,
          f"meta mark & {MASQ_BIT} == {MASQ_BIT} meta mark set meta mark xor {MASQ_BIT} masquerade",
          "ct status dnat ip saddr . ip daddr @hairpin masquerade")
    chain("services", None,
          f"ip saddr != {cfg.pod_cidr} ip daddr @cluster-ips jump mark-for-masquerade",
          f"{lookup} @external-masq jump mark-for-masquerade",
          f"{lookup} @external-local fib saddr type local jump mark-for-masquerade",  # set first: fib costs more
          "dnat ip to ip saddr . ip daddr . meta l4proto . th dport map @affinity",
          f"{lookup} vmap @service-ips")
    chain("affinity-check", None,
          *(f"meta l4proto {p} ct original ip daddr . meta l4proto . ct original proto-dst vmap @affinity-services"
            for p in ("tcp", "udp", "sctp")))
    new_dnat = "affinity-check"
    if cfg.counters:
        # A host process's connection to a local endpoint (the API server behind `kubernetes`, a hostNetwork
        # pod) passes here twice while new: DNATed in output, then again in prerouting when it comes back in
        # on lo. It is counted in output only.
        chain("count-connections", None, "meta iif lo goto affinity-check",
              *(f"meta l4proto {p} ct original ip daddr . meta l4proto . ct original proto-dst . ip daddr . {p} dport "
                f"@{COUNTERS_SET}" for p in ("tcp", "udp", "sctp")),
              "goto affinity-check")
        new_dnat = "count-connections"
    chain("service-endpoints-check", None, f"{lookup} vmap @no-endpoint-services")
    # A service-CIDR address that is local is served by the node itself (the DNS server binds the kube-dns
    # ClusterIP, whose Service the proxy skips), so only non-local unallocated addresses are dropped.
    cluster_checks = ["ip daddr @cluster-ips goto reject-chain",
                      f"ip daddr {cfg.service_cidr} fib daddr type != local drop"]
    if cfg.lb_pool:
        cluster_checks.append(f"ip daddr {cfg.lb_pool} ip daddr != @external-ips drop")
    chain("cluster-ips-check", None, *cluster_checks)
    chain("reject-chain", None, "meta l4proto tcp reject with tcp reset", "reject")
    chain("firewall-check", None,
          f"{lookup} @firewall {lookup} . ip saddr != @firewall-allow drop")
    chain("filter-prerouting-pre-dnat", "type filter hook prerouting priority -110", "ct state new jump firewall-check")
    chain("filter-output-pre-dnat", "type filter hook output priority -110", "ct state new jump firewall-check")
    chain("nat-prerouting", "type nat hook prerouting priority -100", "jump services")
    chain("nat-output", "type nat hook output priority -100", "jump services")
    chain("nat-postrouting", "type nat hook postrouting priority 100", "jump masquerading")
    chain("affinity-prerouting", "type filter hook prerouting priority -90", f"ct state new ct status dnat jump {new_dnat}")
    chain("affinity-output", "type filter hook output priority -90", f"ct state new ct status dnat jump {new_dnat}")
    # Only a new connection that was not DNATed can be to a frontend without endpoints or to an unallocated
    # address; testing a conntrack bit first spares every DNATed connection these lookups.
    not_dnat = "ct state new ct status & dnat == 0"
    chain("filter-input", "type filter hook input priority 0", f"{not_dnat} jump service-endpoints-check")
    for hook in ("forward", "output"):
        chain(f"filter-{hook}", f"type filter hook {hook} priority 0",
              f"{not_dnat} jump service-endpoints-check", f"{not_dnat} jump cluster-ips-check")
    return lines + rule_lines


def element_commands(verb: str, elements: dict[ElementKey, str], *, chunk: int = 4000) -> list[str]:
    """`add element` / `delete element` commands, one per map, in chunks (nft parses long lines slowly)."""
    by_map: dict[str, list[str]] = {}
    for (name, key), value in elements.items():
        text = f"{key} : {value}" if verb == "add" and IS_MAP[name] else key
        by_map.setdefault(name, []).append(text)
    out = []
    for name in MAPS:
        items = by_map.get(name)
        if not items:
            continue
        for i in range(0, len(items), chunk):
            out.append(f"{verb} element {FAMILY} {TABLE} {name} {{ {', '.join(items[i:i + chunk])} }}")
    return out
