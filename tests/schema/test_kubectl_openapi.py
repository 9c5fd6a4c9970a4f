"""The real kubectl v1.32 against our OpenAPI documents: explain, apply with server-side field validation,
client-side apply patches computed from the v3 schema."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from tests.schema.kubectl_stub import Stub, build_app, write_kubeconfig

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")

SERVICE = """
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
"""


@pytest.fixture
async def stub(tmp_path: Path) -> AsyncIterator[Stub]:
    stub = Stub(workdir=tmp_path)
    runner = web.AppRunner(build_app(stub))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    write_kubeconfig(tmp_path / "kubeconfig", port)
    try:
        yield stub
    finally:
        await runner.cleanup()


async def test_explain_service_spec_ports(stub: Stub) -> None:
    code, out, err = await stub.kubectl("explain", "service.spec.ports")
    assert code == 0, err
    assert "KIND:       Service" in out
    assert "FIELD: ports <[]ServicePort>" in out
    assert "targetPort\t<IntOrString>" in out
    assert "port\t<integer> -required-" in out
    fetched = [s.path for s in stub.seen if s.path.startswith("/openapi")]
    assert fetched == ["/openapi/v3", "/openapi/v3/api/v1"]


async def test_explain_deployment_recursive(stub: Stub) -> None:
    code, out, err = await stub.kubectl("explain", "deployments.spec.strategy", "--recursive")
    assert code == 0, err
    assert "GROUP:      apps" in out
    assert "maxSurge\t<IntOrString>" in out


async def test_apply_uses_server_side_validation_and_v3_patches(stub: Stub, tmp_path: Path) -> None:
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(SERVICE)
    code, out, err = await stub.kubectl("apply", "-f", str(manifest))
    assert code == 0, err
    assert "service/web created" in out
    post = next(s for s in stub.seen if s.method == "POST")
    assert post.query.get("fieldValidation") == "Strict"
    assert not any(s.path == "/openapi/v2" for s in stub.seen), "kubectl fell back to client-side validation"

    manifest.write_text(SERVICE.replace("targetPort: 8080}", "targetPort: 8080}\n  - {name: extra, port: 81}"))
    code, out, err = await stub.kubectl("apply", "-f", str(manifest))
    assert code == 0, err
    assert "warning" not in err.lower(), err
    patch = next(s for s in stub.seen if s.method == "PATCH")
    assert patch.content_type == "application/strategic-merge-patch+json"
    stored = stub.objects["/registry/services/specs/default/web"]
    assert [p["port"] for p in stored["spec"]["ports"]] == [80, 81]


async def test_apply_unknown_field_is_rejected_like_kubernetes(stub: Stub, tmp_path: Path) -> None:
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(SERVICE.replace("selector:", "bogus: 1\n  selector:"))
    code, _, err = await stub.kubectl("apply", "-f", str(manifest))
    assert code != 0
    assert ('Service in version "v1" cannot be handled as a Service: strict decoding error: '
            'unknown field "spec.bogus"') in err


async def test_create_with_warn_prints_warning(stub: Stub, tmp_path: Path) -> None:
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(SERVICE.replace("- {name: http, port: 80,", "- {name: http, port: 80, bogus: x,"))
    code, _out, err = await stub.kubectl("create", "--validate=warn", "-f", str(manifest))
    assert code == 0, err
    assert 'Warning: unknown field "spec.ports[0].bogus"' in err
