"""Runs `nanokube explain` from parsed arguments: exit 0 when reachable, 1 on a problem, 2 on errors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nanokube.cli import explain_checks
from nanokube.cli.explain import ExplainOptions, explain_service
from nanokube.cli.explain_output import fetch_report, print_report
from nanokube.cli.explain_render import render
from nanokube.cli.kubeconfig import context_namespace, default_kubeconfig


def _proxy_socket(args: argparse.Namespace, kubeconfig: Path) -> str | None:
    """The server's proxy status socket: it lives in the data dir, next to the kubeconfig the server wrote."""
    if args.proxy_status:
        return None
    path = kubeconfig.resolve().parent / "proxy.sock"
    return str(path) if path.is_socket() else None


def run_explain(args: argparse.Namespace) -> int:
    kubeconfig = args.kubeconfig or default_kubeconfig()
    if not kubeconfig.exists():
        print(f"nanokube: no kubeconfig at {kubeconfig} (is `nanokube server` running? set KUBECONFIG or "
              "--kubeconfig)", file=sys.stderr)
        return 2
    namespace = args.namespace or context_namespace(kubeconfig)
    options = ExplainOptions(cluster_domain=args.cluster_domain, timeout=args.timeout,
                             proxy_status_url=args.proxy_status or explain_checks.DEFAULT_PROXY_STATUS,
                             live_checks=not args.no_checks, proxy_status_socket=_proxy_socket(args, kubeconfig))

    report = fetch_report(kubeconfig, lambda client: explain_service(client, namespace, args.name, options))
    return 2 if report is None else print_report(report, args.output, render)
