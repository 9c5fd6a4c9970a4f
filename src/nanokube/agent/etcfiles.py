"""The pod's /etc/hosts, /etc/resolv.conf and hostname, as kubelet writes them."""

from __future__ import annotations

from pathlib import Path

from nanokube.api.meta import Obj

MAX_HOSTNAME = 63


def pod_hostname(pod: Obj, cluster_domain: str) -> tuple[str, str | None]:
    """(hostname, FQDN or None): spec.hostname or the pod name, and hostname.subdomain.ns.svc.<zone>."""
    spec = pod.get("spec") or {}
    meta = pod["metadata"]
    hostname = (spec.get("hostname") or meta["name"])[:MAX_HOSTNAME].rstrip("-.")
    subdomain = spec.get("subdomain")
    fqdn = f"{hostname}.{subdomain}.{meta.get('namespace', 'default')}.svc.{cluster_domain}" if subdomain else None
    return hostname, fqdn


def hosts_file(pod: Obj, pod_ip: str, cluster_domain: str) -> str:
    hostname, fqdn = pod_hostname(pod, cluster_domain)
    lines = [
        "# Kubernetes-managed hosts file.",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "fe00::0\tip6-mcastprefix",
        "fe00::1\tip6-allnodes",
        "fe00::2\tip6-allrouters",
        f"{pod_ip}\t{fqdn}\t{hostname}" if fqdn else f"{pod_ip}\t{hostname}",
    ]
    aliases = (pod.get("spec") or {}).get("hostAliases") or []
    if aliases:
        lines.append("")
        lines.append("# Entries added by HostAliases.")
        for alias in aliases:
            lines.append(f"{alias.get('ip', '')}\t" + "\t".join(alias.get("hostnames") or []))
    return "\n".join(lines) + "\n"


def _host_resolv(path: Path = Path("/etc/resolv.conf")) -> tuple[list[str], list[str], list[str]]:
    nameservers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    try:
        text = path.read_text()
    except OSError:
        return nameservers, searches, options
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            nameservers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            searches = fields[1:]
        elif fields[0] == "options":
            options.extend(fields[1:])
    return nameservers, searches, options


def _merge_options(base: list[str], extra: list[Obj]) -> list[str]:
    merged: dict[str, str | None] = {}
    for opt in base:
        name, _, value = opt.partition(":")
        merged[name] = value or None
    for opt in extra:
        merged[opt.get("name", "")] = opt.get("value")
    return [f"{k}:{v}" if v is not None else k for k, v in merged.items() if k]


def resolv_conf(pod: Obj, cluster_dns: str, cluster_domain: str, host_resolv: Path = Path("/etc/resolv.conf")
                ) -> str:
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not spec.get("hostNetwork")):
        policy = "ClusterFirst"
    elif policy == "ClusterFirst":
        policy = "Default"
    host_ns, host_search, host_opts = _host_resolv(host_resolv)
    config = spec.get("dnsConfig") or {}
    if policy == "ClusterFirst":
        ns = pod["metadata"].get("namespace", "default")
        nameservers = [cluster_dns]
        searches = [f"{ns}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain, *host_search]
        options = ["ndots:5"]
    elif policy == "None":
        nameservers, searches, options = [], [], []
    else:  # Default: the node's resolver
        nameservers, searches, options = host_ns, host_search, host_opts
    nameservers = [*nameservers, *(config.get("nameservers") or [])][:3]
    searches = list(dict.fromkeys([*searches, *(config.get("searches") or [])]))[:32]
    options = _merge_options(options, config.get("options") or [])
    lines = []
    if searches:
        lines.append("search " + " ".join(searches))
    lines.extend(f"nameserver {n}" for n in nameservers)
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"
