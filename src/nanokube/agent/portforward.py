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
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from nanokube.agent import spdy
from nanokube.agent.poddial import DialError

log = logging.getLogger(__name__)

Dial = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
CHANNEL_PROTOCOLS = ("v4.channel.k8s.io", "v4.base64.channel.k8s.io")
CHUNK = 64 * 1024
OUT_HIGH = 1 << 20  # bytes gathered for the client before the pod readers wait


def parse_port(value: str | None) -> int | None:
    try:
        port = int(value or "")
    except ValueError:
        return None
    return port if 0 < port < 65536 else None


class _Pair:
    """One forwarded connection of the SPDY tunnel: its error and data streams and the pod socket."""

    def __init__(self, tunnel: Tunnel, request_id: str, port: int) -> None:
        self.tunnel = tunnel
        self.request_id = request_id
        self.port = port
        self.error_id = 0
        self.data_id = 0
        self.writer: asyncio.StreamWriter | None = None
        self.pending: list[bytes] = []
        self.client_done = False
        self.task: asyncio.Task | None = None
        self.connected = asyncio.Event()

    async def run(self) -> None:
        t = self.tunnel
        try:
            reader, writer = await t.dial(self.port)
        except DialError as err:
            message = f"error forwarding port {self.port} to pod {t.pod_id}, uid : {err}"
            await t.send(t.codec.data(self.error_id, message.encode()))
            await t.send(t.codec.data(self.data_id, b"", fin=True))
            await t.send(t.codec.data(self.error_id, b"", fin=True))
            return
        self.writer = writer
        for data in self.pending:
            writer.write(data)
        self.pending.clear()
        if self.client_done:
            _half_close(writer)
        self.connected.set()
        try:
            while chunk := await reader.read(CHUNK):
                await t.send(t.codec.data(self.data_id, chunk))
        except OSError:
            pass
        await t.send(t.codec.data(self.data_id, b"", fin=True))
        await t.send(t.codec.data(self.error_id, b"", fin=True))

    async def from_client(self, data: bytes) -> None:
        if self.writer is None:
            self.pending.append(data)
            return
        self.writer.write(data)
        with contextlib.suppress(OSError):
            await self.writer.drain()

    def client_fin(self) -> None:
        self.client_done = True
        if self.writer is not None:
            _half_close(self.writer)

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.writer is not None:
            self.writer.close()


def _half_close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, RuntimeError):
        if writer.can_write_eof():
            writer.write_eof()


class Tunnel:
    def __init__(self, ws: web.WebSocketResponse, dial: Dial, pod_id: str) -> None:
        self.ws = ws
        self.dial = dial
        self.pod_id = pod_id
        self.codec = spdy.Codec()
        self.pairs: dict[str, _Pair] = {}
        self.by_stream: dict[int, _Pair] = {}
        # Frames to the client are gathered and written as one WebSocket message per event-loop turn: the
        # client reads the tunnel as a byte stream, and every message costs a TLS record and a send(2).
        self._out: list[bytes] = []
        self._out_size = 0
        self._wake: asyncio.Future[None] | None = None
        self._drained = asyncio.Event()
        self._drained.set()

    async def send(self, frame: bytes) -> None:
        if self.ws.closed:
            return
        self._out.append(frame)
        self._out_size += len(frame)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
        if self._out_size > OUT_HIGH:
            self._drained.clear()
            await self._drained.wait()

    async def _write_out(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._out:
                self._wake = loop.create_future()
                await self._wake
                continue
            out = self._out
            self._out, self._out_size = [], 0
            data = out[0] if len(out) == 1 else b"".join(out)
            self._drained.set()
            if self.ws.closed:
                continue
            try:
                await self.ws.send_bytes(data)  # waits only while the client's connection is paused
            except (ConnectionError, RuntimeError):
                return

    async def flush(self) -> None:
        """Whatever was gathered, written before the socket closes."""
        if self._out and not self.ws.closed:
            out, self._out, self._out_size = self._out, [], 0
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_bytes(b"".join(out))
        self._drained.set()

    async def run(self) -> None:
        writer = asyncio.ensure_future(self._write_out())
        try:
            await self._serve()
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            await self.flush()

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
                if pair.writer is not None:
                    pair.writer.close()  # the pump then ends the streams; the client waits for the error FIN
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
        if pair.client_done or pair.writer is None:
            self._forget(pair)

    def _forget(self, pair: _Pair) -> None:
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
