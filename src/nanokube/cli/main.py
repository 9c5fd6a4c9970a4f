"""`nanokube` command line: server, agent, explain."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from nanokube import control_plane
from nanokube.cli import ui_command
from nanokube.cli.enter import enter_data_dir
from nanokube.settings import ServerSettings, SettingsError, default_data_dir, parse_hostport, resolve_network


def _server_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("server", help="run the API server, controllers, a node agent, proxy and DNS")
    p.add_argument("--data-dir", type=Path, default=None, help="state, token, kubeconfig, volumes, logs "
                   "(default ~/.local/share/nanokube, root: /var/lib/nanokube)")
    p.add_argument("--api-listen", default="127.0.0.1:6443",
                   help="HOST:PORT of the API (default 127.0.0.1:6443); port 0: a free port the kernel picks, named "
                        "on the ready line and in the kubeconfig")
    p.add_argument("--max-pods", type=int, default=110, help="pods this node runs at most (default 110)")
    p.add_argument("--proxy-status-port", type=int, default=10256,
                   help="port of the proxy's status endpoint on 127.0.0.1 (/healthz, /services; 0 = off; default 10256)")
    p.add_argument("--network", default="auto", help="auto|netns|rootless|loopback (auto: netns as root on Linux "
                   "with nft; rootless for a user when user namespaces work; else loopback)")
    p.add_argument("--service-cidr", default="", help="ClusterIP range (netns 10.96.0.0/12, loopback 127.96.0.0/16)")
    p.add_argument("--pod-cidr", default="", help="pod range (netns 10.244.0.0/16, loopback 127.244.0.0/16)")
    p.add_argument("--lb-pool", default="", help="LoadBalancer addresses, CIDR or A-B "
                   "(netns 10.250.0.0/24, loopback 127.240.0.0/24)")
    p.add_argument("--service-node-port-range", default="30000-32767", help="node port range (default 30000-32767)")
    p.add_argument("--cluster-domain", default="cluster.local", help="DNS zone of the cluster (default cluster.local)")
    p.add_argument("--dns-listen", default=None, help="HOST:PORT of the cluster DNS (default netns: node IP:53, the kube-dns "
                   "Service's endpoint; loopback: kube-dns ClusterIP:53, a user's: port 10053; rootless: the host "
                   "side, default 127.0.0.1:10053)")
    p.add_argument("--dns-ttl", type=int, default=5, help="TTL of cluster DNS answers (default 5)")
    p.add_argument("--dns-pods", default="verified", choices=["disabled", "insecure", "verified"],
                   help="pod A records a-b-c-d.<ns>.pod.<zone> (default verified)")
    p.add_argument("--dns-upstream", action="append", default=None,
                   help="resolver for names outside the cluster zone (repeatable; default /etc/resolv.conf)")
    p.add_argument("--node-name", default=None, help="name of this node (default: the host name)")
    p.add_argument("--node-ip", default="", help="address of this node (loopback 127.0.0.1; netns: the pod gateway)")
    p.add_argument("--flannel-backend", default="auto", choices=["auto", "host-gw", "vxlan"],
                   help="netns mode, pod routes to other nodes: auto (default: host-gw on a shared link, else "
                   "VXLAN), host-gw, vxlan")
    p.add_argument("--no-agent", action="store_true", help="run no node agent (pods stay Pending)")
    p.add_argument("--components", default="controllers,agent,proxy,dns,ingress",
                   help="comma list of components to run besides the API (default all)")
    p.add_argument("--disable", action="append", default=[], metavar="COMPONENT",
                   help="do not run this component (repeatable; e.g. ingress, as k3s's --disable traefik)")
    p.add_argument("--no-ingress", action="store_true", help="run no Ingress controller (same as --disable ingress)")
    p.add_argument("--node-monitor-grace-period", type=float, default=40.0,
                   help="seconds without a Lease renewal before a node turns NotReady (default 40)")
    p.add_argument("--image-dir", type=Path, action="append", default=None,
                   help="directory of your own image catalogue entries (default DATA_DIR/images)")
    p.add_argument("--backoff-base", type=float, default=10.0, help="container restart back-off base (default 10 s)")
    p.add_argument("--history-revisions", type=int, default=10_000,
                   help="revisions kept for watch resumption; older resourceVersions get 410 Gone (default 10000)")
    p.add_argument("--history-seconds", type=float, default=300.0,
                   help="seconds of history always kept for watch resumption (default 300)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    control_plane.add_flags(p)


AGENT_DESCRIPTION = """Join one more node to a running `nanokube server` (like a kubelet plus kube-proxy). It talks to \
the server only through its API: `--server URL --token-file FILE` (the server writes DATA_DIR/token, and its CA \
at DATA_DIR/pki/ca.crt, found next to the token file unless `--ca-file` is given) or `--kubeconfig FILE`. The \
server gives the node the next free /24 of its pod CIDR (spec.podCIDR); the node has no control-plane role. \
Proxy: in netns mode the node programs its own nftables table. In loopback mode all addresses live on the \
host's `lo` and the server's proxy already listens on every ClusterIP and LB address (forwarding to pods on \
every node), so the node's proxy only listens on the node ports of its own `--node-ip`; give each node its own \
loopback address and name, e.g. `--node-ip 127.0.0.2 --node-name node2`. `--no-proxy` runs no proxy at all."""


def _agent_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("agent", help="join another node to a running server (node agent + service proxy)",
                       description=AGENT_DESCRIPTION)
    p.add_argument("--server", default="", help="URL of the server's API, e.g. https://127.0.0.1:6443")
    p.add_argument("--token-file", type=Path, default=None, help="file holding the server's token (its DATA_DIR/token)")
    p.add_argument("--ca-file", type=Path, default=None,
                   help="the server's CA certificate (default: pki/ca.crt next to the token file)")
    p.add_argument("--kubeconfig", type=Path, default=None,
                   help="a kubeconfig to use instead of --server/--token-file/--ca-file")
    p.add_argument("--node-name", default=None, help="name of this node (default: the host name)")
    p.add_argument("--node-ip", default="", help="address of this node (loopback default 127.0.0.1: give each "
                   "node its own, e.g. 127.0.0.2; netns: required)")
    p.add_argument("--data-dir", type=Path, default=None, help="pods, volumes, logs of this node "
                   "(default ~/.local/share/nanokube-agent, root: /var/lib/nanokube-agent)")
    p.add_argument("--network", default="auto", help="auto|netns|loopback, as the server's (auto: netns as root, "
                   "else loopback)")
    p.add_argument("--service-cidr", default="", help="the server's ClusterIP range (default: that of the mode)")
    p.add_argument("--pod-cidr", default="", help="the server's pod range (default: that of the mode)")
    p.add_argument("--lb-pool", default="", help="the server's LoadBalancer pool (default: that of the mode)")
    p.add_argument("--cluster-domain", default="cluster.local", help="DNS zone of the cluster (default cluster.local)")
    p.add_argument("--flannel-backend", default="auto", choices=["auto", "host-gw", "vxlan"],
                   help="netns mode, pod routes to other nodes: auto (default: host-gw on a shared link, else "
                   "VXLAN), host-gw, vxlan")
    p.add_argument("--no-proxy", action="store_true", help="run no service proxy on this node")
    p.add_argument("--proxy-status-port", type=int, default=10256,
                   help="port of the proxy's status endpoint on the node IP (0 = off; default 10256)")
    p.add_argument("--node-lease-duration-seconds", type=float, default=40.0,
                   help="the node's Lease duration; renewed every quarter of it (default 40); keep it under "
                   "the server's --node-monitor-grace-period")
    p.add_argument("--kubelet-port", type=int, default=0, help="port of the node's log server (default: a free one)")
    p.add_argument("--max-pods", type=int, default=110, help="pods this node runs at most (default 110)")
    p.add_argument("--image-dir", type=Path, action="append", default=None,
                   help="directory of your own image catalogue entries (default DATA_DIR/images)")
    p.add_argument("--backoff-base", type=float, default=10.0, help="container restart back-off base (default 10 s)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _explain_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("explain", help="why can't I reach my Service? (one screen, or -o json)")
    p.add_argument("kind", choices=["service", "services", "svc", "ingress", "ingresses", "ing"],
                   help="what to explain (service or ingress)")
    p.add_argument("name", help="name of the Service or Ingress")
    p.add_argument("--url", default=None, help="ingress: the URL to route, e.g. http://a.example.test/api")
    p.add_argument("-n", "--namespace", default=None, help="namespace (default: the kubeconfig context's, else default)")
    p.add_argument("-o", "--output", default="text", choices=["text", "json"], help="text (default) or json")
    p.add_argument("--kubeconfig", type=Path, default=None,
                   help="kubeconfig (default $KUBECONFIG, else DATA_DIR/kubeconfig.yaml of the default data dir)")
    p.add_argument("--cluster-domain", default="cluster.local", help="DNS zone of the cluster (default cluster.local)")
    p.add_argument("--proxy-status", default=None,
                   help="base URL of the proxy's status endpoint (default http://127.0.0.1:10256)")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds for each live check (default 1)")
    p.add_argument("--no-checks", action="store_true",
                   help="read the API only: no DNS query, proxy status or connects to pod ports")


def _settings_from(args: argparse.Namespace) -> tuple[ServerSettings, tuple[str, ...]]:
    network = resolve_network(args.network)
    host, port = parse_hostport(args.api_listen, 6443)
    s = ServerSettings(data_dir=args.data_dir or default_data_dir(), api_host=host, api_port=port, network=network,
                       service_cidr=args.service_cidr, pod_cidr=args.pod_cidr, lb_pool=args.lb_pool,
                       node_port_range=args.service_node_port_range, cluster_domain=args.cluster_domain,
                       dns_ttl=args.dns_ttl, dns_pods=args.dns_pods, dns_upstreams=args.dns_upstream,
                       node_ip=args.node_ip, node_monitor_grace_period=args.node_monitor_grace_period,
                       backoff_base=args.backoff_base, proxy_status_port=args.proxy_status_port,
                       max_pods=args.max_pods, flannel_backend=args.flannel_backend,
                       compact_keep_revisions=args.history_revisions,
                       compact_keep_seconds=args.history_seconds)
    s.control_plane = control_plane.from_args(args)
    if args.node_name:
        s.node_name = args.node_name
    if args.dns_listen and network == "rootless":
        s.host_dns_listen = parse_hostport(args.dns_listen, 53)
    elif args.dns_listen:
        s.dns_listen = parse_hostport(args.dns_listen, 53)
    if args.image_dir:
        s.image_dirs = list(args.image_dir)
    components = tuple(c.strip() for c in args.components.split(",") if c.strip())
    known = {"controllers", "agent", "proxy", "dns", "ingress"}
    unknown = set(components) - known
    if unknown:
        raise SettingsError(f"--components: unknown {', '.join(sorted(unknown))}")
    disabled = {c.strip() for d in args.disable for c in d.split(",") if c.strip()} | (
        {"ingress"} if args.no_ingress else set())
    if disabled - known:
        raise SettingsError(f"--disable: unknown {', '.join(sorted(disabled - known))}")
    if network == "rootless":
        # rootless mode forwards LoadBalancer ports from the host's 127.0.0.1: the Ingress's 80/443 would take
        # those ports from users' own LoadBalancers
        disabled.add("ingress")
    components = tuple(c for c in components if c not in disabled)
    if args.no_agent:
        components = tuple(c for c in components if c != "agent")
    return s, components


def _node_settings_from(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from nanokube.worker_node import NodeSettings, default_agent_data_dir

    network = resolve_network(args.network)
    if network == "rootless":  # a joining node in a user namespace of its own is not built (yet)
        if args.network != "auto":
            raise SettingsError("--network rootless: `nanokube agent` runs in netns (root) or loopback mode")
        network = "loopback"
    s = NodeSettings(data_dir=args.data_dir or default_agent_data_dir(), network=network,
                     server=args.server, token_file=args.token_file, ca_file=args.ca_file,
                     kubeconfig=args.kubeconfig, node_ip=args.node_ip, proxy=not args.no_proxy,
                     proxy_status_port=args.proxy_status_port, kubelet_port=args.kubelet_port,
                     service_cidr=args.service_cidr, pod_cidr=args.pod_cidr, lb_pool=args.lb_pool,
                     cluster_domain=args.cluster_domain, backoff_base=args.backoff_base, max_pods=args.max_pods,
                     node_lease_duration=args.node_lease_duration_seconds,
                     flannel_backend=args.flannel_backend)
    if args.node_name:
        s.node_name = args.node_name
    if args.image_dir:
        s.image_dirs = list(args.image_dir)
    s.fill_defaults()
    return s


def _enter_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("enter", help="run a shell or command inside a rootless server's namespaces",
                       description="Run COMMAND (default: your $SHELL) inside the node of a `nanokube server "
                       "--network rootless`: its network, mount and PID namespaces, as root of its user "
                       "namespace, so ClusterIPs, pod IPs, `ip netns` and `nft list ruleset` answer. KUBECONFIG "
                       "is set. Like `minikube ssh`.")
    p.add_argument("--data-dir", type=Path, default=None, help="the server's data dir (default: the one holding "
                   "$KUBECONFIG when that is a rootless server's, else ~/.local/share/nanokube)")
    p.add_argument("command_args", metavar="COMMAND", nargs=argparse.REMAINDER, help="command and arguments (after --)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nanokube", description="Kubernetes Services, for real, on one machine.")
    sub = parser.add_subparsers(dest="command", required=True)
    _server_parser(sub)
    _agent_parser(sub)
    _explain_parser(sub)
    _enter_parser(sub)
    ui_command.add_parser(sub)
    return parser


@contextlib.contextmanager
def _no_system_ca_bundle() -> Iterator[None]:
    """aiohttp creates two default client SSL contexts when it is imported and loads the system CA bundle into
    both (~2 MB of RSS). A server or node never uses them: its API clients carry the cluster CA or a Unix
    socket, HTTPS probes skip verification and the log proxy is plain HTTP. So the import runs with OpenSSL's
    default CA file and directory pointing at nothing; the environment is restored right after."""
    saved = {name: os.environ.get(name) for name in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    os.environ.update(SSL_CERT_FILE=os.devnull, SSL_CERT_DIR=os.devnull)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.command == "server":
        try:
            settings, components = _settings_from(args)
            settings.fill_defaults()
        except SettingsError as exc:
            print(f"nanokube: {exc}", file=sys.stderr)
            return 2
        with _no_system_ca_bundle():
            from nanokube.server import main_server

        if settings.network == "rootless":
            from nanokube.cli.rootless import main_rootless

            return main_rootless(settings, components, main_server)
        return main_server(settings, components)
    if args.command == "agent":
        with _no_system_ca_bundle():
            from nanokube.worker_node import main_node

        try:
            node_settings = _node_settings_from(args)
        except SettingsError as exc:
            print(f"nanokube: {exc}", file=sys.stderr)
            return 2
        return main_node(node_settings)
    if args.command == "enter":
        from nanokube.cli.enter import run_enter

        return run_enter(args.data_dir or enter_data_dir(), args.command_args)
    if args.command == "explain" and args.kind in ("ingress", "ingresses", "ing"):
        from nanokube.cli.explain_ingress import run_explain_ingress

        return run_explain_ingress(args)
    if args.command == "explain":
        from nanokube.cli.explain_command import run_explain

        return run_explain(args)
    if args.command == "ui":
        return ui_command.run_ui(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
