"""etcd v3 over its JSON gateway (`/v3/...`), with aiohttp: the few calls the etcd store needs.

The gateway speaks proto3 JSON: keys and values are base64, int64 fields are strings, and fields holding
their default value are left out (`succeeded` is absent when a txn fails, a PUT watch event has no `type`,
a zero `create_revision` is absent). This module hides those quirks: callers get `Kv` records and ints.

Endpoints are tried in turn: a request that cannot reach one member (connection refused, reset, member
gone) moves to the next and is retried until `retry_for` seconds have passed, so losing one member of a
three-member cluster costs a short pause, not errors. Requests carry `hasleader` metadata, so a member
cut off from its cluster refuses them instead of answering with stale data (etcd's WithRequireLeader).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from nanokube.store.base import StoreError

# gRPC metadata through the gateway: a member without a leader answers "no leader" instead of serving.
REQUIRE_LEADER = {"Grpc-Metadata-hasleader": "true"}
RETRY_FOR = 10.0
REQUEST_TIMEOUT = 10.0
RETRY_PAUSE = 0.1
# Errors etcd returns without having applied anything; the request is retried (on another member).
UNAVAILABLE = ("no leader", "not capable", "too many requests", "timed out", "leader changed", "unhealthy cluster")


class EtcdError(StoreError):
    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class EtcdCompacted(EtcdError):
    """A read or watch at a revision etcd has compacted away."""

    def __init__(self, message: str, compact_revision: int = 0) -> None:
        super().__init__(message, 11)
        self.compact_revision = compact_revision


class EtcdFutureRevision(EtcdError):
    pass


class EtcdUnreachable(EtcdError):
    pass


@dataclass(frozen=True, slots=True)
class Kv:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with prefix (etcd's GetPrefixRangeEnd)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"  # every key


def kv_of(raw: dict[str, Any]) -> Kv:
    return Kv(unb64(raw.get("key")), unb64(raw.get("value")), int(raw.get("create_revision", 0)),
              int(raw.get("mod_revision", 0)), int(raw.get("version", 0)))


def ssl_context(cafile: str | None, certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    if not (cafile or certfile):
        return None
    context = ssl.create_default_context(cafile=cafile)
    if certfile:
        context.load_cert_chain(certfile, keyfile)
    return context


class EtcdGateway:
    def __init__(self, endpoints: list[str], *, ssl_context: ssl.SSLContext | None = None,
                 retry_for: float = RETRY_FOR) -> None:
        if not endpoints:
            raise ValueError("no etcd endpoint")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self._current = 0
        self._ssl = ssl_context
        self._retry_for = retry_for
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=64, ssl=self._ssl if self._ssl is not None else False)
            # a member that stops answering (hung, partitioned) costs REQUEST_TIMEOUT, then the next is tried
            self._session = aiohttp.ClientSession(connector=connector, headers=REQUIRE_LEADER,
                                                  timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT,
                                                                                sock_connect=2),
                                                  json_serialize=lambda o: orjson.dumps(o).decode())
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _rotate(self, failed: int) -> None:
        if self._current == failed:
            self._current = (failed + 1) % len(self.endpoints)

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a gateway request, moving to the next member on connection failures or "no leader"."""
        deadline = time.monotonic() + self._retry_for
        data = orjson.dumps(body)
        while True:
            index = self._current
            try:
                async with self.session.post(self.endpoints[index] + path, data=data,
                                             headers={"Content-Type": "application/json"}) as resp:
                    payload = await resp.read()
                    answer = orjson.loads(payload) if payload else {}
                    if resp.status == 200:
                        return answer
                    error = _error_of(answer, resp.status)
            except (aiohttp.ClientConnectionError, TimeoutError, orjson.JSONDecodeError) as exc:
                error = EtcdUnreachable(f"etcd at {self.endpoints[index]}: {exc or type(exc).__name__}")
            if not isinstance(error, EtcdUnreachable) and not any(u in str(error) for u in UNAVAILABLE):
                raise error
            self._rotate(index)
            if time.monotonic() >= deadline:
                raise error
            await asyncio.sleep(RETRY_PAUSE)

    # --- KV -------------------------------------------------------------------------------------------------

    async def range(self, key: bytes, range_end: bytes | None = None, *, limit: int = 0,
                    revision: int = 0) -> tuple[list[Kv], int, bool]:
        """(kvs sorted by key, header revision, more)."""
        body: dict[str, Any] = {"key": b64(key)}
        if range_end is not None:
            body["range_end"] = b64(range_end)
        if limit:
            body["limit"] = str(limit)
        if revision:
            body["revision"] = str(revision)
        answer = await self.call("/v3/kv/range", body)
        return ([kv_of(kv) for kv in answer.get("kvs", ())], header_revision(answer), bool(answer.get("more")))

    async def txn(self, compare: list[dict[str, Any]], success: list[dict[str, Any]],
                  failure: list[dict[str, Any]]) -> tuple[bool, int, list[dict[str, Any]]]:
        """(succeeded, header revision, the responses of the branch that ran)."""
        answer = await self.call("/v3/kv/txn", {"compare": compare, "success": success, "failure": failure})
        return bool(answer.get("succeeded")), header_revision(answer), answer.get("responses", [])

    async def compact(self, revision: int) -> None:
        await self.call("/v3/kv/compaction", {"revision": str(revision), "physical": False})

    async def status(self) -> dict[str, Any]:
        return await self.call("/v3/maintenance/status", {})

    # --- watch ----------------------------------------------------------------------------------------------

    async def watch(self, key: bytes, range_end: bytes, start_revision: int) -> AsyncIterator[dict[str, Any]]:
        """The `result` objects of one watch stream (with prev_kv), from start_revision on, until the stream
        breaks (EtcdUnreachable) or etcd cancels it (EtcdCompacted, EtcdError)."""
        request = {"create_request": {"key": b64(key), "range_end": b64(range_end),
                                      "start_revision": str(start_revision), "prev_kv": True}}
        index = self._current
        try:
            resp = await self.session.post(self.endpoints[index] + "/v3/watch", data=orjson.dumps(request),
                                           timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            self._rotate(index)
            raise EtcdUnreachable(f"etcd at {self.endpoints[index]}: {exc or type(exc).__name__}") from exc
        try:
            if resp.status != 200:
                raise _error_of(orjson.loads(await resp.read() or b"{}"), resp.status)
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    message = orjson.loads(line)
                    if "error" in message:
                        raise _error_of(message["error"], 500)
                    result = message.get("result", {})
                    if result.get("canceled"):
                        compacted = int(result.get("compact_revision", 0))
                        if compacted:
                            raise EtcdCompacted("etcdserver: mvcc: required revision has been compacted",
                                                compacted)
                        raise EtcdError(f"etcd canceled the watch: {result.get('cancel_reason', '')}")
                    yield result
            self._rotate(index)
            raise EtcdUnreachable(f"etcd at {self.endpoints[index]} ended the watch stream")
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            self._rotate(index)
            raise EtcdUnreachable(f"etcd at {self.endpoints[index]}: {exc or type(exc).__name__}") from exc
        finally:
            resp.close()


def header_revision(answer: dict[str, Any]) -> int:
    return int(answer.get("header", {}).get("revision", 0))


def _error_of(answer: dict[str, Any], status: int) -> EtcdError:
    message = str(answer.get("message") or answer.get("error") or f"HTTP {status}")
    code = int(answer.get("code", 0) or 0)
    if "required revision has been compacted" in message:
        return EtcdCompacted(message)
    if "future revision" in message:
        return EtcdFutureRevision(message, code)
    return EtcdError(message, code)
