"""Bad input answers a Kubernetes-style 4xx, costs no more than its size, and changes nothing (issue 14).

Each case here once answered 500, an empty reply, or stored a body expanded a thousandfold.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from pathlib import Path

import pytest
import urllib3
from tests.conftest import Server

CM = "/api/v1/namespaces/default/configmaps"


class Http:
    def __init__(self, srv: Server) -> None:
        ctx = ssl.create_default_context(cafile=str(srv.data_dir / "pki" / "ca.crt"))
        self.pool = urllib3.PoolManager(ssl_context=ctx, retries=False)
        self.srv = srv

    def __call__(self, method: str, path: str, body: bytes | dict | None = None, *,
                 ctype: str = "application/json", timeout: float = 30.0) -> tuple[int, object, object]:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        resp = self.pool.request(method, self.srv.url + path, body=data, timeout=timeout,
                                 headers={"Content-Type": ctype, "Authorization": f"Bearer {self.srv.token}"})
        try:
            payload = json.loads(resp.data) if resp.data else None
        except ValueError:
            payload = resp.data
        return resp.status, payload, resp.headers


@pytest.fixture(scope="module")
def http(api_server: Server) -> Http:
    return Http(api_server)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def laughs(levels: int, fanout: int = 9) -> bytes:
    """A billion-laughs ConfigMap: each level's anchor lists `fanout` aliases of the one before."""
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: laughs", "x:", '  a0: &a0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fanout) + "]")
    lines.append(f"data: {{k: *a{levels}}}")
    return ("\n".join(lines) + "\n").encode()


def test_yaml_alias_bomb_is_refused_before_it_expands(http: Http, api_server: Server) -> None:
    body = laughs(9)
    assert len(body) < 1000
    assert api_server.proc is not None
    before = rss_kib(api_server.proc.pid)
    started = time.monotonic()
    status, out, _ = http("POST", CM, body, ctype="application/yaml")
    assert status == 400, out
    assert out["reason"] == "BadRequest"
    assert out["message"] == "error converting YAML to JSON: yaml: document contains excessive aliasing"
    assert time.monotonic() - started < 5
    assert rss_kib(api_server.proc.pid) - before < 50 * 1024
    assert http("GET", CM + "/laughs")[0] == 404
    # A few levels (a small expansion, as go-yaml allows) still decode.
    small = laughs(2, fanout=3).replace(b"data: {k: *a2}", b"data: {k: v}")
    status, out, _ = http("POST", CM, small, ctype="application/yaml")
    assert status == 201, out
    http("DELETE", CM + "/laughs")


def test_aliases_of_a_large_scalar_cannot_pass_the_body_limit(http: Http) -> None:
    big = "x" * (512 * 1024)
    doc = (f'apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: fat}}\nx: &big "{big}"\n'
           "data: {" + ", ".join(f"k{i}: *big" for i in range(10)) + "}\n").encode()
    status, out, _ = http("POST", CM, doc, ctype="application/yaml")
    assert status == 400 and "excessive aliasing" in out["message"], out
    assert http("GET", CM + "/fat")[0] == 404


@pytest.mark.parametrize("ctype,body", [
    ("application/yaml", b"a: " + b"[" * 100_000),
    ("application/yaml", b"- " * 100_000),
    ("application/yaml", "".join(f"{'  ' * i}k:\n" for i in range(1200)).encode()),
    ("application/json", b'{"a":' + b"[" * 100_000),
    ("application/json", b'{"metadata":{"name":"deep"},"data":' + b"[" * 900 + b"]" * 900 + b"}"),
], ids=["yaml-flow", "yaml-block-seq", "yaml-block-map", "json-100k", "json-900"])
def test_deep_nesting_is_400(http: Http, ctype: str, body: bytes) -> None:
    status, out, _ = http("POST", CM, body, ctype=ctype)
    assert status == 400, (status, out)
    assert out["kind"] == "Status" and out["reason"] == "BadRequest"
    if "yaml" in ctype:
        assert out["message"] == "error converting YAML to JSON: yaml: exceeded max depth of 200"


@pytest.mark.parametrize("limit", ["-1", "-100", "x", "1.5"])
def test_bad_limit_is_400(http: Http, limit: str) -> None:
    status, out, _ = http("GET", f"{CM}?limit={limit}")
    assert status == 400, out
    assert out["reason"] == "BadRequest" and out["message"].startswith("limit: Invalid value: ")


DUPLICATE = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup-a","name":"dup-b"},"data":{"k":"v"}}'


def test_duplicate_json_keys_strict_is_400(http: Http) -> None:
    status, out, _ = http("POST", CM + "?fieldValidation=Strict", DUPLICATE)
    assert status == 400, out
    assert out["message"] == ('ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
                              'duplicate field "metadata.name"')
    assert http("GET", CM + "/dup-a")[0] == 404 and http("GET", CM + "/dup-b")[0] == 404


def test_duplicate_json_keys_warn_is_a_warning(http: Http) -> None:
    status, out, headers = http("POST", CM + "?fieldValidation=Warn", DUPLICATE)
    assert status == 201, out
    assert out["metadata"]["name"] == "dup-b"  # the last wins, as in Go
    assert headers.get("Warning") == '299 - "duplicate field \\"metadata.name\\""'
    status, out, headers = http("PUT", CM + "/dup-b?fieldValidation=Strict",
                                DUPLICATE.replace(b'"dup-a"', b'"dup-b"'))
    assert status == 400 and 'duplicate field \\"metadata.name\\"' not in out["message"]
    assert 'duplicate field "metadata.name"' in out["message"]
    http("DELETE", CM + "/dup-b")


def test_exact_list_at_an_old_revision_is_that_snapshot(http: Http) -> None:
    status, created, _ = http("POST", CM, {"metadata": {"name": "snap"}, "data": {"v": "1"}})
    assert status == 201
    rv1 = created["metadata"]["resourceVersion"]
    created["data"] = {"v": "2"}
    status, _, _ = http("PUT", CM + "/snap", created)
    assert status == 200
    status, old, _ = http("GET", f"{CM}?resourceVersion={rv1}&resourceVersionMatch=Exact")
    assert status == 200, old
    assert old["metadata"]["resourceVersion"] == rv1
    assert [(i["metadata"]["name"], i["data"]) for i in old["items"] if i["metadata"]["name"] == "snap"] == \
        [("snap", {"v": "1"})]
    status, now, _ = http("GET", f"{CM}?resourceVersion={rv1}&resourceVersionMatch=NotOlderThan")
    assert status == 200 and int(now["metadata"]["resourceVersion"]) > int(rv1)
    assert [i["data"] for i in now["items"] if i["metadata"]["name"] == "snap"] == [{"v": "2"}]
    http("DELETE", CM + "/snap")


@pytest.mark.parametrize("query,fragment", [
    ("resourceVersionMatch=Exact", "resourceVersionMatch is forbidden unless resourceVersion is provided"),
    ("resourceVersion=0&resourceVersionMatch=Exact", 'resourceVersionMatch \\"exact\\" is forbidden'),
    ("resourceVersion=1&resourceVersionMatch=Newest", 'Unsupported value: "Newest"'),
])
def test_bad_resource_version_match_is_422(http: Http, query: str, fragment: str) -> None:
    status, out, _ = http("GET", f"{CM}?{query}")
    assert status == 422, out
    assert out["details"]["kind"] == "ListOptions" and fragment.replace('\\"', '"') in out["message"]


@pytest.mark.parametrize("rv", ["-1", "-99999", "abc", "1e3"])
def test_negative_or_malformed_revision_is_400(http: Http, rv: str) -> None:
    for path in (f"{CM}?resourceVersion={rv}", f"{CM}?watch=1&timeoutSeconds=1&resourceVersion={rv}"):
        status, out, _ = http("GET", path)
        assert status == 400, (path, out)
        assert out["reason"] == "BadRequest" and f'"{rv}"' in out["message"]


def test_future_revision_is_too_large_after_the_wait(http: Http) -> None:
    status, listed, _ = http("GET", CM)
    future = int(listed["metadata"]["resourceVersion"]) + 1_000_000
    started = time.monotonic()
    status, out, _ = http("GET", f"{CM}?watch=1&timeoutSeconds=30&resourceVersion={future}")
    waited = time.monotonic() - started
    assert status == 200
    events = [json.loads(line) for line in out.decode().splitlines()] if isinstance(out, bytes) else [out]
    assert len(events) == 1 and events[0]["type"] == "ERROR", events
    err = events[0]["object"]
    assert err["code"] == 504 and err["reason"] == "Timeout"
    assert err["message"].startswith(f"Timeout: Too large resource version: {future}, current: ")
    assert err["details"]["causes"] == [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}]
    assert 2.5 < waited < 20
    status, out, _ = http("GET", f"{CM}?resourceVersion={future}&resourceVersionMatch=NotOlderThan")
    assert status == 504 and out["details"]["retryAfterSeconds"] == 1


def test_exact_list_below_the_history_window_is_410(make_server) -> None:
    srv = make_server("--network", "loopback", "--components=", "--no-agent", "--history-revisions", "5",
                      "--history-seconds", "0.5")
    call = Http(srv)
    for i in range(20):
        assert call("POST", CM, {"metadata": {"name": f"c{i}"}})[0] == 201
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status, out, _ = call("GET", f"{CM}?resourceVersion=2&resourceVersionMatch=Exact")
        if status != 200:
            break
        time.sleep(0.2)
    assert status == 410, out
    assert out["reason"] == "Expired" and out["message"] == "The resourceVersion for the provided list is too old."


@pytest.mark.parametrize("request_line", [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"POST /api HTTP/1.1\r\n\r\n",
                                          b"HEAD /version HTTP/1.0\r\n\r\n"])
def test_plain_http_to_the_https_port_is_400(api_server: Server, request_line: bytes) -> None:
    with socket.create_connection(("127.0.0.1", api_server.api_port), timeout=10) as sock:
        sock.sendall(request_line)
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    assert reply == b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"


def test_the_https_port_still_speaks_tls_after_plain_http(http: Http, api_server: Server) -> None:
    with socket.create_connection(("127.0.0.1", api_server.api_port), timeout=10) as sock:
        sock.sendall(b"\x00\x01garbage")
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(100) == b""
    assert http("GET", "/version")[0] == 200


def _mutations(seed: int, count: int) -> list[tuple[str, bytes]]:
    """Seeded random damage to valid JSON and YAML ConfigMaps: flipped, dropped, duplicated and inserted bytes,
    plus structural tokens ([ { & * ! : -) that drive parsers into their corner cases."""
    import random

    rnd = random.Random(seed)
    base_json = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fz", "labels": {"a": "b"}},
                            "data": {"k": "v", "n": "1"}}).encode()
    base_yaml = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fz\n  labels: {a: b}\ndata:\n  k: v\n  n: '1'\n"
    tokens = [b"[", b"{", b"&a ", b"*a", b"!!binary ", b": ", b"- ", b"\x00", b"\xff", b'"', b"\\u0000", b"1e999",
              b"-0", b"null", b"<<: *a\n", b"? ", b"%YAML 1.1\n", b"---\n", b"\t"]
    out: list[tuple[str, bytes]] = []
    for i in range(count):
        ctype, body = ("application/json", base_json) if i % 2 else ("application/yaml", base_yaml)
        data = bytearray(body)
        for _ in range(rnd.randint(1, 6)):
            pos = rnd.randrange(len(data) + 1)
            op = rnd.random()
            if op < 0.3 and data:
                data[min(pos, len(data) - 1)] = rnd.randrange(256)
            elif op < 0.5 and data:
                del data[pos:pos + rnd.randint(1, 8)]
            elif op < 0.8:
                data[pos:pos] = rnd.choice(tokens) * rnd.randint(1, 50)
            else:
                data[pos:pos] = data[pos:pos + rnd.randint(1, 40)] * rnd.randint(1, 20)
        out.append((ctype, bytes(data)))
    return out


def test_fuzzed_bodies_never_answer_5xx(http: Http, api_server: Server) -> None:
    """A bounded fuzz run (seeded, 300 bodies): every answer is < 500 and the server stays up and small."""
    assert api_server.proc is not None
    before = rss_kib(api_server.proc.pid)
    statuses: dict[int, int] = {}
    for method, path in (("POST", CM), ("PUT", CM + "/fz")):
        for ctype, body in _mutations(seed=14 if method == "POST" else 15, count=150):
            status, out, _ = http(method, path + "?fieldValidation=Strict", body, ctype=ctype)
            assert status < 500, (ctype, body, out)
            statuses[status] = statuses.get(status, 0) + 1
            if status in (200, 201):
                http("DELETE", CM + "/" + out["metadata"]["name"])
    assert statuses.get(400, 0) > 50, statuses
    assert rss_kib(api_server.proc.pid) - before < 100 * 1024
    assert http("GET", "/version")[0] == 200


@pytest.mark.parametrize("query", ["limit=99999999999999999999", "continue=%%%", "continue=eyJ9",
                                   "labelSelector=a%20in%20(", "fieldSelector=nosuchfield%3Dx",
                                   "timeoutSeconds=abc&watch=1", "resourceVersion=99999999999999999999999999"
                                   "&resourceVersionMatch=Exact"])
def test_fuzzed_queries_are_4xx(http: Http, query: str) -> None:
    status, out, _ = http("GET", f"{CM}?{query}", timeout=20)
    assert 400 <= status < 500 or status == 504, (query, status, out)
