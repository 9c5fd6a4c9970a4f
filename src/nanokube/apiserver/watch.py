"""Watch streams: `?watch=1` as JSON lines, resumable from any retained resourceVersion.

Each store event is encoded once (its value bytes are shipped as they are); only watchers with
selectors decode it, and Table watchers get a one-row Table per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from nanokube.api import errors
from nanokube.api.scheme import Resource
from nanokube.api.selectors import matches_labels, parse_field_selector, parse_label_selector
from nanokube.store.base import Compacted, Store

BOOKMARK_INTERVAL = 30.0

_PREFIX = {t: b'{"type":"' + t.encode() + b'","object":' for t in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK",
                                                                      "ERROR")}


def event_line(etype: str, raw: bytes) -> bytes:
    return _PREFIX[etype] + raw + b"}\n"


class WatchFilter:
    def __init__(self, res: Resource, label_selector: str | None, field_selector: str | None) -> None:
        self.reqs = parse_label_selector(label_selector)
        self.fmatch = parse_field_selector(field_selector, res.plural, res.kind)
        self.active = bool(self.reqs) or self.fmatch is not None

    def matches(self, raw: bytes | None) -> bool:
        if raw is None:
            return False
        if not self.active:
            return True
        obj = orjson.loads(raw)
        if self.reqs and not matches_labels(self.reqs, obj.get("metadata", {}).get("labels")):
            return False
        return self.fmatch is None or self.fmatch(obj)


async def serve_watch(request: web.Request, store: Store, res: Resource, ns: str | None, *,
                      table: Callable[[bytes, bool], bytes] | None = None) -> web.StreamResponse:
    q = request.query
    flt = WatchFilter(res, q.get("labelSelector"), q.get("fieldSelector"))
    bookmarks = q.get("allowWatchBookmarks", "").lower() in ("1", "true")
    try:
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else 1800 * (1 + random.random())
    except ValueError as exc:
        raise errors.bad_request("invalid timeoutSeconds") from exc
    rv = q.get("resourceVersion", "")
    prefix = res.key_prefix(ns)
    initial: list[bytes] = []
    if rv in ("", "0"):
        items, start = await store.list(prefix)
        initial = [kv.value for kv in items if flt.matches(kv.value)]
    else:
        try:
            start = int(rv)
        except ValueError as exc:
            raise errors.bad_request(f'invalid resource version "{rv}"') from exc
    if start < store.compact_revision:
        # Same as kube-apiserver: the watch is established, then the first event is a 410 ERROR.
        stream = None
    else:
        stream = store.watch(prefix, start)

    resp = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    first = [True]

    def encode(etype: str, raw: bytes) -> bytes:
        if table is not None and etype != "BOOKMARK" and etype != "ERROR":
            out = table(raw, first[0])
            first[0] = False
            return event_line(etype, out)
        return event_line(etype, raw)

    async def pump() -> None:
        for raw in initial:
            await resp.write(encode("ADDED", raw))
        if stream is None:
            gone = errors.gone(f"too old resource version: {start} ({store.compact_revision})")
            await resp.write(event_line("ERROR", orjson.dumps(gone.status())))
            return
        it = stream.__aiter__()
        last_rev = start
        while True:
            try:
                ev = await asyncio.wait_for(it.__anext__(), BOOKMARK_INTERVAL if bookmarks else None)
            except TimeoutError:
                bm = {"kind": res.kind, "apiVersion": res.api_version,
                      "metadata": {"resourceVersion": str(max(last_rev, store.current_revision))}}
                await resp.write(event_line("BOOKMARK", orjson.dumps(bm)))
                continue
            except StopAsyncIteration:
                return
            except Compacted as exc:
                gone = errors.gone(f"too old resource version: {exc.requested} ({exc.compact_revision})")
                await resp.write(event_line("ERROR", orjson.dumps(gone.status())))
                return
            last_rev = ev.revision
            if not flt.active:
                await resp.write(encode(ev.type, ev.value))
                continue
            now_match = flt.matches(ev.value) if ev.type != "DELETED" else False
            was_match = flt.matches(ev.prev_value) if ev.type != "ADDED" else False
            if ev.type == "DELETED":
                if flt.matches(ev.value):
                    await resp.write(encode("DELETED", ev.value))
            elif now_match and was_match:
                await resp.write(encode("MODIFIED", ev.value))
            elif now_match:
                await resp.write(encode("ADDED", ev.value))
            elif was_match:
                await resp.write(encode("DELETED", ev.value))

    try:
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            async with asyncio.timeout(timeout):
                await pump()
    finally:
        aclose: Any = getattr(stream, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await resp.write_eof()
    return resp
