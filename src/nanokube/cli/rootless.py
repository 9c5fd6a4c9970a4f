"""`nanokube server --network rootless`: the server in netns mode inside namespaces of its own, plus the port
forwarder that makes the API, the DNS, NodePorts and LoadBalancer ports reachable on the host's loopback."""

from __future__ import annotations

import sys
from collections.abc import Callable

from nanokube.api.kube_dns import KUBE_DNS_METRICS_PORT
from nanokube.rootless.forwarder import Forwarder
from nanokube.rootless.host_ports import HostPorts
from nanokube.rootless.launcher import run_rootless
from nanokube.server import prepare_data_dir
from nanokube.settings import ServerSettings, SettingsError


def main_rootless(settings: ServerSettings, components: tuple[str, ...],
                  main_server: Callable[..., int]) -> int:
    assert settings.dns_listen is not None and settings.host_dns_listen is not None
    if settings.api_port == 0:  # the host side binds the API port before the server inside picks one
        print("nanokube: --api-listen with port 0 is not supported in rootless mode; name a port", file=sys.stderr)
        return 2
    dns_host_port = settings.host_dns_listen[1]
    inside_dns = settings.dns_listen
    static = {("tcp", settings.api_port): ("127.0.0.1", settings.api_port),
              ("udp", dns_host_port): inside_dns, ("tcp", dns_host_port): inside_dns}
    best_effort = ({("tcp", settings.proxy_status_port): ("127.0.0.1", settings.proxy_status_port)}
                   if settings.proxy_status_port else {})
    # the DNS's metrics beside its listener, as on a root node (another rootless server may hold 9153 already)
    best_effort[("tcp", KUBE_DNS_METRICS_PORT)] = (inside_dns[0], KUBE_DNS_METRICS_PORT)

    def run_node(host_ports: HostPorts) -> int:
        forwarder = Forwarder(host_ports, node_ip=settings.node_ip, static=static, best_effort=best_effort)
        return main_server(settings, components, extra={"rootless-forwarder": forwarder.run})

    try:
        prepare_data_dir(settings.data_dir)
    except SettingsError as exc:
        print(f"nanokube: {exc}", file=sys.stderr)
        return 2
    early = [("tcp", settings.api_port), ("udp", dns_host_port), ("tcp", dns_host_port)]
    return run_rootless(settings.data_dir, early, run_node)
