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
from nanokube.api.selectors import matches_labels, parse_field_selector, parse_label_selector
from nanokube.api.served_resources import Resource
from nanokube.apiserver import versions
from nanokube.apiserver.registry import Registry
from nanokube.store.base import Compacted

BOOKMARK_INTERVAL = 30.0

_PREFIX = {t: b'{"type":"' + t.encode() + b'","object":' for t in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK",
                                                                      "ERROR")}


def event_line(etype: str, raw: bytes) -> bytes:
    return _PREFIX[etype] + raw + b"}\n"


# Every watcher of a resource gets the same line for the same event: build it once (keyed by revision, which
# names one stored change, and type, which a selector can turn from MODIFIED into ADDED or DELETED).
_SHARED_LINES: dict[tuple[int, str], tuple[bytes, Any]] = {}
_SHARED_MAX = 4096


# Entries remember the very bytes object they were made from: every watcher of one event holds the same
# bytes, and anything else with the same key (another store in the same process, e.g. in tests) misses.
_SHARED_OBJECTS: dict[tuple[int, str], tuple[bytes, Any]] = {}


def _shared(cache: dict[tuple[int, str], tuple[bytes, Any]], key: tuple[int, str], raw: bytes,
            make: Callable[[], Any]) -> Any:
    hit = cache.get(key)
    if hit is not None and hit[0] is raw:
        return hit[1]
    value = make()
    cache[key] = (raw, value)
    if len(cache) > _SHARED_MAX:
        for old in list(cache)[: _SHARED_MAX // 4]:
            del cache[old]
    return value


def _shared_decode(key: tuple[int, str], raw: bytes) -> Any:
    return _shared(_SHARED_OBJECTS, key, raw, lambda: orjson.loads(raw))


def shared_event_line(revision: int, etype: str, raw: bytes) -> bytes:
    line: bytes = _shared(_SHARED_LINES, (revision, etype), raw, lambda: event_line(etype, raw))
    return line


class WatchFilter:
    def __init__(self, res: Resource, label_selector: str | None, field_selector: str | None) -> None:
        self.reqs = parse_label_selector(label_selector)
        self.fmatch = parse_field_selector(field_selector, res.plural, res.kind)
        self.active = bool(self.reqs) or self.fmatch is not None

    def matches(self, raw: bytes | None, key: tuple[int, str] | None = None) -> bool:
        """Whether the object passes the selectors. `key` (revision, "new"/"old") lets watchers of the same
        event share one decoded object instead of each parsing the bytes again; it is only read."""
        if raw is None:
            return False
        if not self.active:
            return True
        obj = _shared_decode(key, raw) if key is not None else orjson.loads(raw)
        if self.reqs and not matches_labels(self.reqs, obj.get("metadata", {}).get("labels")):
            return False
        return self.fmatch is None or self.fmatch(obj)


async def serve_watch(request: web.Request, registry: Registry, res: Resource, ns: str | None, *,
                      table: Callable[[bytes, bool], bytes] | None = None,
                      transform: Callable[[bytes], bytes] | None = None) -> web.StreamResponse:
    """transform: stored bytes -> the bytes this request's version serves (custom resources), or None."""
    q = request.query
    flt = WatchFilter(res, q.get("labelSelector"), q.get("fieldSelector"))
    bookmarks = q.get("allowWatchBookmarks", "").lower() in ("1", "true")
    try:
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else 1800 * (1 + random.random())
    except ValueError as exc:
        raise errors.bad_request("invalid timeoutSeconds") from exc
    rv = q.get("resourceVersion", "")
    requested = versions.parse_revision(rv)  # 400 for a negative or malformed one
    # Same as kube-apiserver: past the request's checks the watch is established, and any other failure is
    # its first event, an ERROR: 410 for a compacted revision; a revision not reached within the watch cache's
    # wait is "Too large resource version".
    failure: errors.ApiError | None = None
    initial: list[bytes] = []
    start, stream = requested, None
    if requested > registry.current_revision and not await versions.wait_for_revision(registry, requested):
        failure = versions.too_large(requested, registry.current_revision)
    else:
        begun = await registry.watch(res, ns, rv)
        initial = [raw for raw in begun.initial if flt.matches(raw)]
        start, stream = begun.start, begun.events
        if stream is None:
            failure = errors.gone(f"too old resource version: {start} ({registry.compact_revision})")

    resp = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    first = [True]

    def encode(etype: str, raw: bytes, revision: int = 0) -> bytes:
        if transform is not None and etype != "BOOKMARK" and etype != "ERROR":
            raw = transform(raw)
            revision = 0  # not the stored bytes: nothing to share with other watchers
        if table is not None and etype != "BOOKMARK" and etype != "ERROR":
            out = table(raw, first[0])
            first[0] = False
            return event_line(etype, out)
        if revision:
            return shared_event_line(revision, etype, raw)
        return event_line(etype, raw)

    async def pump() -> None:
        for raw in initial:
            await resp.write(encode("ADDED", raw))
        if stream is None:
            assert failure is not None
            await resp.write(event_line("ERROR", orjson.dumps(failure.status())))
            return
        it = stream.__aiter__()
        last_rev = start
        while True:
            try:
                ev = await asyncio.wait_for(it.__anext__(), BOOKMARK_INTERVAL if bookmarks else None)
            except TimeoutError:
                bm = {"kind": res.kind, "apiVersion": res.api_version,
                      "metadata": {"resourceVersion": str(max(last_rev, registry.current_revision))}}
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
                await resp.write(encode(ev.type, ev.value, ev.revision))
                continue
            new_key, old_key = (ev.revision, "new"), (ev.revision, "old")
            now_match = flt.matches(ev.value, new_key) if ev.type != "DELETED" else False
            was_match = flt.matches(ev.prev_value, old_key) if ev.type != "ADDED" else False
            if ev.type == "DELETED":
                if flt.matches(ev.value, new_key):
                    await resp.write(encode("DELETED", ev.value, ev.revision))
            elif now_match and was_match:
                await resp.write(encode("MODIFIED", ev.value, ev.revision))
            elif now_match:
                await resp.write(encode("ADDED", ev.value, ev.revision))
            elif was_match:
                await resp.write(encode("DELETED", ev.value, ev.revision))

    try:
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            async with asyncio.timeout(timeout):
                await pump()
    finally:
        aclose: Any = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()  # unsubscribes from the store's broadcast
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await resp.write_eof()
    return resp
