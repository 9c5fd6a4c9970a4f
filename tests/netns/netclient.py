"""A small network client run inside the test namespace or a pod (stdlib only); prints one JSON line.

  netclient.py http HOST PORT COUNT         COUNT new connections, GET / each; counts the answering pods
  netclient.py until HOST PORT SECONDS N    new connections until N distinct pods answered (or time is up)
  netclient.py tcp HOST PORT SECONDS        one connect: ok | refused | timeout | <errno name>, and how long
  netclient.py udp HOST PORT                one datagram: sent | <errno name> (a local nft drop gives EPERM)
  netclient.py settle HOST PORT SECONDS N   connects until N in a row are refused; every result counted, the
                                            slowest failure, and the time until the first of those N
"""

from __future__ import annotations

import errno
import json
import socket
import sys
import time


def get(host: str, port: int, timeout: float = 2.0) -> dict:
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def http(host: str, port: int, count: int) -> dict:
    pods: dict[str, int] = {}
    answers: dict[str, dict] = {}
    for _ in range(count):
        answer = get(host, port)
        pods[answer["pod"]] = pods.get(answer["pod"], 0) + 1
        answers.setdefault(answer["pod"], answer)
    return {"pods": pods, "answers": answers}


def until(host: str, port: int, seconds: float, wanted: int) -> dict:
    seen: dict[str, dict] = {}
    deadline = time.monotonic() + seconds
    tries = 0
    while len(seen) < wanted and time.monotonic() < deadline:
        tries += 1
        try:
            answer = get(host, port, timeout=0.5)
        except OSError:
            time.sleep(0.02)
            continue
        seen.setdefault(answer["pod"], answer)
    return {"pods": sorted(seen), "answers": seen, "tries": tries}


def tcp(host: str, port: int, seconds: float) -> dict:
    began = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=seconds):
            result = "ok"
    except ConnectionRefusedError:
        result = "refused"
    except TimeoutError:
        result = "timeout"
    except OSError as err:
        result = errno.errorcode.get(err.errno or 0, str(err))
    return {"result": result, "elapsed": time.monotonic() - began}


def settle(host: str, port: int, seconds: float, wanted: int) -> dict:
    began = time.monotonic()
    counts: dict[str, int] = {}
    slowest_failure = 0.0
    streak, streak_began = 0, 0.0
    while streak < wanted and time.monotonic() - began < seconds:
        out = tcp(host, port, 1.0)
        counts[out["result"]] = counts.get(out["result"], 0) + 1
        if out["result"] != "ok":
            slowest_failure = max(slowest_failure, out["elapsed"])
        if out["result"] == "refused":
            streak, streak_began = streak + 1, streak_began if streak else time.monotonic() - began
        else:
            streak = 0
        time.sleep(0.002)
    return {"counts": counts, "slowest_failure": slowest_failure, "refused_from": streak_began, "settled": streak >= wanted}


def udp(host: str, port: int) -> dict:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(b"x", (host, port))
            return {"result": "sent"}
        except OSError as err:
            return {"result": errno.errorcode.get(err.errno or 0, str(err))}


def main(argv: list[str]) -> dict:
    cmd, host, port = argv[0], argv[1], int(argv[2])
    if cmd == "http":
        return http(host, port, int(argv[3]))
    if cmd == "until":
        return until(host, port, float(argv[3]), int(argv[4]))
    if cmd == "tcp":
        return tcp(host, port, float(argv[3]))
    if cmd == "settle":
        return settle(host, port, float(argv[3]), int(argv[4]))
    if cmd == "udp":
        return udp(host, port)
    raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
