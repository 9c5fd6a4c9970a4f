"""One namespace's live map, kept incrementally, and the streams that watch it.

Each Service's entry is kept serialized. A change marks the Services it touches (ui/index.py); 50 ms later
(a rollout is a burst of changes) only those are rebuilt, and the ones whose bytes differ go out as one
`event: delta` built once and queued as the same bytes on every open stream: ten tabs cost one computation.
A stream gets the whole map (`data:`, the snapshot) when it connects, and again instead of a backlog when it
falls too far behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

import orjson

from nanokube.ui.index import ClusterIndex, Touched
from nanokube.ui.view import service_entry

log = logging.getLogger(__name__)

COALESCE_SECONDS = 0.05
MAX_QUEUED = 200  # chunks a slow stream may owe before it gets a snapshot instead


class Subscriber:
    """One open stream: the chunks it still has to write."""

    def __init__(self, feed: NamespaceFeed) -> None:
        self.feed = feed
        self.chunks: deque[bytes] = deque()
        self.wake = asyncio.Event()

    def push(self, chunk: bytes) -> None:
        if len(self.chunks) >= MAX_QUEUED:
            self.chunks.clear()
            chunk = self.feed.snapshot()
        self.chunks.append(chunk)
        self.wake.set()

    def take(self) -> bytes:
        self.wake.clear()
        out = b"".join(self.chunks)
        self.chunks.clear()
        return out


class NamespaceFeed:
    def __init__(self, namespace: str, index: ClusterIndex, domain: str) -> None:
        self.namespace = namespace
        self.index = index
        self.domain = domain
        self.subscribers: set[Subscriber] = set()
        self.entries: dict[str, bytes] = {}   # Service -> its serialized entry
        self.unmatched: set[str] = set()      # Services whose selector matches no pod
        self._dirty: set[str] = set()
        self._namespaces_changed = False
        self._flush_handle: asyncio.TimerHandle | None = None
        self._snapshot: bytes | None = None
        self.rebuilt = 0  # Service entries built, for tests and the bench
        for name in list(index.namespace(namespace).services):
            self._rebuild(name)

    def _rebuild(self, name: str) -> bool:
        """Rebuild one Service's entry; True if its bytes changed."""
        ns_index = self.index.namespace(self.namespace)
        inputs = ns_index.inputs(name)
        self.rebuilt += 1
        if inputs is None:
            self.unmatched.discard(name)
            return self.entries.pop(name, None) is not None
        entry, _matched = service_entry(inputs.svc, inputs.slices, inputs.pods, inputs.events,
                                        self.index.sorted_nodes, ns_index.pods.get, self.domain)
        if inputs.reads_all_pods:
            self.unmatched.add(name)
        else:
            self.unmatched.discard(name)
        body = orjson.dumps(entry)
        if self.entries.get(name) == body:
            return False
        self.entries[name] = body
        return True

    def _rebuild_logged(self, name: str) -> bool:
        try:
            return self._rebuild(name)
        except Exception:  # one odd object must not stop the map: that Service keeps its last entry
            log.exception("UI: building the map entry of Service %s/%s failed", self.namespace, name)
            return False

    def touch(self, touched: Touched) -> None:
        """Mark what a change touched (synchronous: called from informer handlers)."""
        if touched.all_services:
            self._dirty |= set(self.entries) | set(self.index.namespace(self.namespace).services)
        self._dirty |= touched.services
        if touched.pods_relabelled:
            self._dirty |= self.unmatched
        self._namespaces_changed |= touched.namespaces
        if (self._dirty or self._namespaces_changed) and self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(COALESCE_SECONDS, self.flush)

    def flush(self) -> None:
        """Rebuild the touched Services and send the ones that changed (COALESCE_SECONDS after a change)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        dirty, self._dirty = self._dirty, set()
        changed = sorted(name for name in dirty if self._rebuild_logged(name))
        namespaces, self._namespaces_changed = self._namespaces_changed, False
        if not changed and not namespaces:
            return
        self._snapshot = None
        parts = [orjson.dumps(name) + b":" + self.entries.get(name, b"null") for name in changed]
        body = b'{"services":{' + b",".join(parts) + b"}"
        if namespaces:
            body += b',"namespaces":' + orjson.dumps(sorted(self.index.namespace_names))
        chunk = b"event: delta\ndata: " + body + b"}\n\n"
        for sub in self.subscribers:
            sub.push(chunk)

    def snapshot(self) -> bytes:
        if self._snapshot is None:
            self._snapshot = (b'data: {"namespace":' + orjson.dumps(self.namespace) + b',"namespaces":'
                              + orjson.dumps(sorted(self.index.namespace_names)) + b',"services":['
                              + b",".join(self.entries[n] for n in sorted(self.entries)) + b"]}\n\n")
        return self._snapshot

    def close(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
