"""ServiceAccounts through kubectl's typed commands (protobuf bodies)."""

from __future__ import annotations

import json


def test_kubectl_create_serviceaccount(api_server):
    out = api_server.kubectl("create", "serviceaccount", "robot")
    assert out.stdout.strip() == "serviceaccount/robot created"
    sa = json.loads(api_server.kubectl("get", "serviceaccount", "robot", "-o", "json").stdout)
    assert sa["metadata"]["name"] == "robot" and sa["metadata"]["namespace"] == "default"
