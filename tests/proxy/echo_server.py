"""Tiny echo server for proxy tests: every TCP line / UDP datagram is answered with
"<server ip>:<port> <client ip>:<port>\\n". Usage: echo_server.py IP PORT [IP PORT ...]; prints "ready"."""

from __future__ import annotations

import asyncio
import sys


class Tcp(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        me, peer = transport.get_extra_info("sockname"), transport.get_extra_info("peername")
        self.reply = f"{me[0]}:{me[1]} {peer[0]}:{peer[1]}\n".encode()
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\n" in self.buf:
            _, self.buf = self.buf.split(b"\n", 1)
            self.transport.write(self.reply)  # type: ignore[attr-defined]


class Udp(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.me = transport.get_extra_info("sockname")

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(f"{self.me[0]}:{self.me[1]} {addr[0]}:{addr[1]}\n".encode(), addr)  # type: ignore


async def main(pairs: list[tuple[str, int]]) -> None:
    loop = asyncio.get_running_loop()
    for ip, port in pairs:
        await loop.create_server(Tcp, ip, port, reuse_address=True)
        await loop.create_datagram_endpoint(Udp, local_addr=(ip, port))
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main([(args[i], int(args[i + 1])) for i in range(0, len(args), 2)]))
