"""What `nanokube explain` (Services and Ingresses alike) does around its report: fetch it with a client made from
the kubeconfig, turn API and connection errors into one line and exit 2, print it as text or JSON, exit 0 when
the verdict is OK and 1 when it names a problem."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson

from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj
from nanokube.client import ApiClient, client_from_kubeconfig


def fetch_report(kubeconfig: Path, fetch: Callable[[ApiClient], Awaitable[Obj]]) -> Obj | None:
    """The report `fetch` builds, or None after saying on stderr why there is none."""
    async def run() -> Obj:
        client = client_from_kubeconfig(str(kubeconfig), user_agent="nanokube-explain")
        try:
            return await fetch(client)
        finally:
            await client.close()

    try:
        return asyncio.run(run())
    except ApiError as err:
        print(f"nanokube: the API refused: {err.message or err.reason} ({err.code})", file=sys.stderr)
    except (aiohttp.ClientError, OSError) as err:
        print(f"nanokube: cannot reach the API server from {kubeconfig}: {err}", file=sys.stderr)
    return None


def print_report(report: Obj, output: str, render: Callable[[Obj], str]) -> int:
    if output == "json":
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(render(report))
    return 0 if report["verdict"]["ok"] else 1
