"""Runs `nanokube explain` from parsed arguments: exit 0 when reachable, 1 on a problem, 2 on errors."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import aiohttp
import orjson

from nanokube.api.errors import ApiError
from nanokube.cli import explain_checks
from nanokube.cli.explain import ExplainOptions, explain_service
from nanokube.cli.explain_render import render
from nanokube.cli.kubeconfig import context_namespace, default_kubeconfig
from nanokube.client import client_from_kubeconfig


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

    async def run() -> dict:
        client = client_from_kubeconfig(str(kubeconfig), user_agent="nanokube-explain")
        try:
            return await explain_service(client, namespace, args.name, options)
        finally:
            await client.close()

    try:
        report = asyncio.run(run())
    except ApiError as err:
        print(f"nanokube: the API refused: {err.message or err.reason} ({err.code})", file=sys.stderr)
        return 2
    except (aiohttp.ClientError, OSError) as err:
        print(f"nanokube: cannot reach the API server from {kubeconfig}: {err}", file=sys.stderr)
        return 2
    if args.output == "json":
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(render(report))
    return 0 if report["verdict"]["ok"] else 1
