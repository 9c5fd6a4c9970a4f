"""`--api-listen HOST:0`: the kernel picks the port (no bind-then-release race in tests and scripts), and the
server names it everywhere a client looks: the ready line, the kubeconfig, the `kubernetes` Endpoints."""

from __future__ import annotations

import json
import socket

from tests.conftest import Server


def test_port_zero_is_chosen_and_named_on_the_ready_line_kubeconfig_and_endpoints(make_server) -> None:
    srv: Server = make_server("--network", "loopback", "--components=", "--no-agent")  # starts with port 0
    assert srv.api_port != 0 and f"api=https://127.0.0.1:{srv.api_port} " in srv.ready_line
    assert f'"server": "https://127.0.0.1:{srv.api_port}"' in srv.kubeconfig.read_text()
    eps = json.loads(srv.kubectl("get", "endpoints", "kubernetes", "-o", "json").stdout)
    assert eps["subsets"][0]["ports"][0]["port"] == srv.api_port
    with socket.create_connection(("127.0.0.1", srv.api_port), timeout=5):
        pass
    # a restart keeps the port it was given: clients holding the kubeconfig keep working
    port = srv.api_port
    srv.stop()
    srv.start()
    assert srv.api_port == port and srv.kubectl("get", "ns", "default").returncode == 0
