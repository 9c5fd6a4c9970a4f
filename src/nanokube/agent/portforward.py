"""pods/portforward on the kubelet port, in both WebSocket forms clients speak:

- ``SPDY/3.1+portforward.k8s.io`` (kubectl 1.32): the WebSocket carries a SPDY byte stream; per forwarded
  connection the client opens an error stream and a data stream (headers ``streamtype``, ``port``,
  ``requestid``); the server dials the pod port when both are there, pumps bytes, ends with FIN on both, and
  writes the reason on the error stream when the port cannot be reached (kubectl then reports it and stops).
- ``v4.channel.k8s.io`` (the Python client), query ``ports=a,b``: channel 2i carries port i's data, 2i+1 its
  errors; each channel first gets the port number (2 bytes, little endian); one connection per port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from nanokube.agent import spdy
from nanokube.agent.poddial import DialError

log = logging.getLogger(__name__)

Dial = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
Connect = Callable[[int], Awaitable[socket.socket]]
TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
CHANNEL_PROTOCOLS = ("v4.channel.k8s.io", "v4.base64.channel.k8s.io")
CHUNK = 64 * 1024
OUT_HIGH, OUT_LOW = 1 << 20, 256 << 10  # bytes waiting for the client: pods pause above, resume below
OUT_POLL = 0.002  # how often a paused tunnel looks at the client's buffer again
OUT_MESSAGE = 256 << 10  # gathered bytes written at once, without waiting for the end of the loop turn


def parse_port(value: str | None) -> int | None:
    try:
        port = int(value or "")
    except ValueError:
        return None
    return port if 0 < port < 65536 else None


def _pause(pod: _PodSide) -> None:
    if pod.transport is not None and not pod.transport.is_closing():
        with contextlib.suppress(RuntimeError):
            pod.transport.pause_reading()


def _resume(pod: _PodSide) -> None:
    if pod.transport is not None and not pod.transport.is_closing():
        with contextlib.suppress(RuntimeError):
            pod.transport.resume_reading()


class _PodSide(asyncio.Protocol):
    """The pod's socket of one forwarded connection: what the pod sends becomes data frames on the tunnel
    straight from the event loop's callback (no stream buffer, no task wake-up per read)."""

    def __init__(self, pair: _Pair) -> None:
        self.pair = pair
        self.transport: asyncio.Transport | None = None
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.writable: asyncio.Future[None] | None = None  # set while the pod reads slower than the client sends

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        self.pair.tunnel.queue_data(self.pair.data_id, data, self)

    def eof_received(self) -> bool:
        self._end()
        return True  # the client may still be sending: keep our side open for writing

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()
        self.resume_writing()

    def pause_writing(self) -> None:
        if self.writable is None:
            self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.writable is not None:
            if not self.writable.done():
                self.writable.set_result(None)
            self.writable = None

    def _end(self) -> None:
        if not self.ended.done():
            self.ended.set_result(None)


class _Pair:
    """One forwarded connection of the SPDY tunnel: its error and data streams and the pod socket."""

    def __init__(self, tunnel: Tunnel, request_id: str, port: int) -> None:
        self.tunnel = tunnel
        self.request_id = request_id
        self.port = port
        self.error_id = 0
        self.data_id = 0
        self.pod: _PodSide | None = None
        self.pending: list[bytes] = []
        self.client_done = False
        self.task: asyncio.Task | None = None

    async def run(self) -> None:
        t = self.tunnel
        try:
            sock = await t.connect(self.port)
        except DialError as err:
            message = f"error forwarding port {self.port} to pod {t.pod_id}, uid : {err}"
            t.queue(t.codec.data(self.error_id, message.encode()))
            t.queue(t.codec.data(self.data_id, b"", fin=True))
            t.queue(t.codec.data(self.error_id, b"", fin=True))
            return
        pod = _PodSide(self)
        try:
            await asyncio.get_running_loop().create_connection(lambda: pod, sock=sock)
        except BaseException:
            sock.close()
            raise
        assert pod.transport is not None
        self.pod = pod
        t.track(pod)
        for data in self.pending:
            pod.transport.write(data)
        self.pending.clear()
        if self.client_done:
            _half_close(pod.transport)
        try:
            await pod.ended
        finally:
            t.untrack(pod)
        t.queue(t.codec.data(self.data_id, b"", fin=True))
        t.queue(t.codec.data(self.error_id, b"", fin=True))

    async def from_client(self, data: bytes) -> None:
        pod = self.pod
        if pod is None or pod.transport is None:
            self.pending.append(data)
            return
        if pod.transport.is_closing():
            return
        pod.transport.write(data)
        if pod.writable is not None:
            await pod.writable

    def client_fin(self) -> None:
        self.client_done = True
        if self.pod is not None and self.pod.transport is not None:
            _half_close(self.pod.transport)

    def close_pod(self) -> None:
        if self.pod is not None and self.pod.transport is not None:
            self.pod.transport.close()

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.close_pod()


def _half_close(transport: asyncio.Transport) -> None:
    with contextlib.suppress(OSError, RuntimeError):
        if transport.can_write_eof() and not transport.is_closing():
            transport.write_eof()


def _ws_binary_header(length: int) -> bytes:
    """A server's (unmasked) WebSocket binary frame header, FIN set."""
    if length < 126:
        return bytes((0x82, length))
    if length < 65536:
        return struct.pack("!BBH", 0x82, 126, length)
    return struct.pack("!BBQ", 0x82, 127, length)


class Tunnel:
    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None, connect: Connect,
                 pod_id: str) -> None:
        self.ws = ws
        self.transport = transport  # the client's connection, written directly (see queue)
        self.connect = connect
        self.pod_id = pod_id
        self.codec = spdy.Codec()
        self.pairs: dict[str, _Pair] = {}
        self.by_stream: dict[int, _Pair] = {}
        # Frames to the client are gathered and written as one WebSocket message per event-loop turn: the
        # client reads the tunnel as a byte stream, and every message costs a TLS record and a send(2).
        self._loop = asyncio.get_running_loop()
        self._out: list[bytes] = []
        self._out_size = 0
        self._flush_scheduled = False
        self._pods: set[_PodSide] = set()
        self._reading_paused = False  # the client reads slower than the pods send: pods wait

    def queue(self, frame: bytes) -> None:
        self._out.append(frame)
        self._out_size += len(frame)
        if self._out_size >= OUT_MESSAGE:
            self.flush()  # a fast pod fills many reads in one turn: bound the message and check the client's buffer
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def queue_data(self, stream_id: int, data: bytes, _pod: _PodSide) -> None:
        self.queue(struct.pack(">II", stream_id, len(data)) + data)

    def flush(self) -> None:
        self._flush_scheduled = False  # a call_soon still pending finds nothing to write
        if not self._out:
            return
        out = self._out
        self._out, self._out_size = [], 0
        transport = self.transport
        if self.ws.closed or transport is None or transport.is_closing():
            return
        size = sum(map(len, out))
        out.insert(0, _ws_binary_header(size))
        transport.write(b"".join(out))
        if not self._reading_paused and transport.get_write_buffer_size() > OUT_HIGH:
            self._reading_paused = True
            for pod in self._pods:
                _pause(pod)
            self._loop.call_later(OUT_POLL, self._maybe_resume)

    def _maybe_resume(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing() and transport.get_write_buffer_size() > OUT_LOW:
            self._loop.call_later(OUT_POLL, self._maybe_resume)
            return
        self._reading_paused = False
        for pod in self._pods:
            _resume(pod)

    def track(self, pod: _PodSide) -> None:
        self._pods.add(pod)
        if self._reading_paused:
            _pause(pod)

    def untrack(self, pod: _PodSide) -> None:
        self._pods.discard(pod)

    async def send(self, frame: bytes) -> None:
        self.queue(frame)

    async def run(self) -> None:
        try:
            await self._serve()
        finally:
            self.flush()

    async def _serve(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.BINARY:
                    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                        break
                    continue
                for frame in self.codec.feed(msg.data):
                    if not await self.handle(frame):
                        return
        except spdy.ProtocolError as err:
            log.info("port-forward to %s: %s", self.pod_id, err)
            await self.send(self.codec.goaway(0, 1))
        finally:
            for pair in list(self.pairs.values()):
                pair.close()
            tasks = [p.task for p in self.pairs.values() if p.task is not None]
            await asyncio.gather(*tasks, return_exceptions=True)

    async def handle(self, f: spdy.Frame) -> bool:
        if not f.control:
            pair = self.by_stream.get(f.stream_id)
            if pair is not None and pair.data_id == f.stream_id:
                if f.data:
                    await pair.from_client(f.data)
                if f.fin:
                    pair.client_fin()
            return True
        if f.kind == spdy.SYN_STREAM:
            await self.open_stream(f)
        elif f.kind == spdy.RST_STREAM:
            pair = self.by_stream.get(f.stream_id)
            if pair is not None and f.stream_id == pair.data_id:
                pair.client_done = True
                pair.close_pod()  # its task then ends the streams; the client waits for the error FIN
                if pair.task is None or pair.task.done():
                    self._forget(pair)
        elif f.kind == spdy.PING:
            await self.send(self.codec.ping(f.value))
        elif f.kind == spdy.GOAWAY:
            return False
        return True

    async def open_stream(self, f: spdy.Frame) -> None:
        kind = f.headers.get("streamtype")
        port = parse_port(f.headers.get("port"))
        if kind not in ("error", "data") or port is None:
            await self.send(self.codec.rst_stream(f.stream_id, spdy.RST_PROTOCOL_ERROR))
            return
        # old clients send no requestid: the error stream is the one just before its data stream
        request_id = f.headers.get("requestid") or str((f.stream_id - (2 if kind == "data" else 0)) // 4)
        await self.send(self.codec.syn_reply(f.stream_id))
        pair = self.pairs.get(request_id)
        if pair is None:
            pair = self.pairs[request_id] = _Pair(self, request_id, port)
        if kind == "error":
            pair.error_id = f.stream_id
        else:
            pair.data_id = f.stream_id
        self.by_stream[f.stream_id] = pair
        if pair.error_id and pair.data_id and pair.task is None:
            pair.task = asyncio.ensure_future(pair.run())
            pair.task.add_done_callback(lambda _t, p=pair: self._finished(p))

    def _finished(self, pair: _Pair) -> None:
        if pair.client_done or pair.pod is None:
            self._forget(pair)

    def _forget(self, pair: _Pair) -> None:
        pair.close_pod()  # both sides are done: a pod socket left half-open would stay until the tunnel ends
        if self.pairs.get(pair.request_id) is pair:
            del self.pairs[pair.request_id]
        for sid in (pair.error_id, pair.data_id):
            if self.by_stream.get(sid) is pair:
                del self.by_stream[sid]


async def serve_channels(ws: web.WebSocketResponse, ports: list[int], dial: Dial, pod_id: str) -> None:
    """The plain WebSocket protocol: every listed port gets one connection for the life of the socket."""
    for i, port in enumerate(ports):
        for channel in (2 * i, 2 * i + 1):
            await ws.send_bytes(bytes((channel, port & 0xFF, port >> 8)))
    writers: dict[int, asyncio.StreamWriter] = {}
    pumps: list[asyncio.Task] = []

    async def pump(index: int, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            while chunk := await reader.read(CHUNK):
                await ws.send_bytes(bytes((2 * index,)) + chunk)

    for i, port in enumerate(ports):
        try:
            reader, writer = await dial(port)
        except DialError as err:
            message = f"error forwarding port {port} to pod {pod_id}, uid : {err}"
            await ws.send_bytes(bytes((2 * i + 1,)) + message.encode())
            continue
        writers[i] = writer
        pumps.append(asyncio.ensure_future(pump(i, reader)))
    if not writers:
        return
    all_done = asyncio.ensure_future(asyncio.gather(*pumps, return_exceptions=True))

    async def receive() -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.BINARY or len(msg.data) < 2:
                continue
            channel, index = msg.data[0], msg.data[0] // 2
            writer = writers.get(index)
            if channel % 2 == 0 and writer is not None:
                writer.write(msg.data[1:])
                with contextlib.suppress(OSError):
                    await writer.drain()

    receiver = asyncio.ensure_future(receive())
    try:
        await asyncio.wait([receiver, all_done], return_when=asyncio.FIRST_COMPLETED)
    finally:
        receiver.cancel()
        for writer in writers.values():
            writer.close()
        for task in pumps:
            task.cancel()
        await asyncio.gather(receiver, all_done, *pumps, return_exceptions=True)
