"""`nanokube ui`: open the web UI's login link (a one-time code, never the token) in the desktop's browser."""

from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path

import yaml

from nanokube.cli.kubeconfig import default_kubeconfig
from nanokube.ui.auth import login_url


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("ui", help="open the web UI (Services -> endpoints -> pods -> nodes, live)")
    p.add_argument("--print-url", action="store_true", help="print the login link instead of opening a browser")
    p.add_argument("--kubeconfig", type=Path, default=None,
                   help="kubeconfig (default $KUBECONFIG, else DATA_DIR/kubeconfig.yaml of the default data dir)")


def _server_and_token(path: Path) -> tuple[str, str]:
    config = yaml.safe_load(path.read_text()) or {}
    current = config.get("current-context")
    context = next((c.get("context") or {} for c in config.get("contexts") or [] if c.get("name") == current), {})
    cluster = next((c.get("cluster") or {} for c in config.get("clusters") or []
                    if c.get("name") == context.get("cluster")), {})
    user = next((u.get("user") or {} for u in config.get("users") or [] if u.get("name") == context.get("user")), {})
    if not cluster.get("server") or not user.get("token"):
        raise ValueError(f"{path}: the current context has no server or no token")
    return cluster["server"], user["token"]


def run_ui(args: argparse.Namespace) -> int:
    path = args.kubeconfig or default_kubeconfig()
    try:
        server, token = _server_and_token(path)
    except (OSError, ValueError, yaml.YAMLError, AttributeError) as exc:
        print(f"nanokube: cannot read the kubeconfig: {exc}", file=sys.stderr)
        return 1
    url = login_url(server, token)
    if args.print_url or not webbrowser.open(url):
        print(url)
    return 0
