"""An async Kubernetes REST client: the only way components other than the apiserver reach the cluster."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from nanokube.api import patch
from nanokube.api.errors import ApiError
from nanokube.api.served_resources import Resource

PATCH_TYPES = {
    "merge": patch.MERGE_PATCH,
    "strategic": patch.STRATEGIC_MERGE_PATCH,
    "json": patch.JSON_PATCH,
    "apply": patch.APPLY_PATCH,
}


def resource_path(resource: Resource, namespace: str | None = None, name: str | None = None,
                  subresource: str | None = None) -> str:
    base = f"/apis/{resource.group}/{resource.version}" if resource.group else f"/api/{resource.version}"
    if resource.namespaced and namespace:
        base += f"/namespaces/{quote(namespace, safe='')}"
    base += f"/{resource.plural}"
    if name is not None:
        base += f"/{quote(name, safe='')}"
        if subresource:
            base += f"/{subresource}"
    return base


def _error_from(status: int, body: bytes) -> ApiError:
    try:
        data = orjson.loads(body)
        if isinstance(data, dict) and data.get("kind") == "Status":
            return ApiError(int(data.get("code") or status), data.get("reason", ""), data.get("message", ""),
                            data.get("details"))
    except orjson.JSONDecodeError:
        pass
    return ApiError(status, "Unknown", body.decode("utf-8", "replace")[:500])


class ApiClient:
    """Thin async client. Methods return decoded JSON dicts and raise ApiError on non-2xx answers."""

    def __init__(self, base_url: str, token: str | None = None, *, ca_file: str | None = None,
                 ca_data: str | None = None, user_agent: str = "nanokube", unix_socket: str | None = None) -> None:
        """unix_socket: talk plain HTTP over that socket instead (base_url then only names the host)."""
        self.base_url = base_url.rstrip("/")
        self.unix_socket = unix_socket
        self.token = token  # the node's own servers (kubelet port, proxy status) ask callers for it too
        self._ssl: ssl.SSLContext | bool = (ssl.create_default_context(cafile=ca_file, cadata=ca_data)
                                            if ca_file or ca_data else True)
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector: aiohttp.BaseConnector = aiohttp.UnixConnector(self.unix_socket, limit=64) \
                if self.unix_socket else aiohttp.TCPConnector(limit=64, ssl=self._ssl)
            self._session = aiohttp.ClientSession(
                headers=self._headers, connector=connector,
                json_serialize=lambda o: orjson.dumps(o).decode(),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      body: Any = None, content_type: str = "application/json") -> Any:
        data = None
        headers = {}
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            headers["Content-Type"] = content_type
        clean = {k: str(v) for k, v in (params or {}).items() if v is not None}
        async with self.session.request(method, self.base_url + path, params=clean, data=data,
                                        headers=headers) as resp:
            raw = await resp.read()
            if resp.status >= 300:
                raise _error_from(resp.status, raw)
            if not raw:
                return None
            if resp.content_type == "application/json":
                return orjson.loads(raw)
            return raw

    async def get(self, resource: Resource, name: str, namespace: str | None = None,
                  subresource: str | None = None) -> dict[str, Any]:
        return await self.request("GET", resource_path(resource, namespace, name, subresource))

    async def list(self, resource: Resource, namespace: str | None = None, *, label_selector: str | None = None,
                   field_selector: str | None = None, limit: int | None = None,
                   continue_token: str | None = None, resource_version: str | None = None) -> dict[str, Any]:
        params = {"labelSelector": label_selector, "fieldSelector": field_selector, "limit": limit,
                  "continue": continue_token, "resourceVersion": resource_version}
        return await self.request("GET", resource_path(resource, namespace), params=params)

    async def create(self, resource: Resource, obj: dict[str, Any], namespace: str | None = None,
                     *, subresource: str | None = None, name: str | None = None) -> dict[str, Any]:
        ns = namespace or obj.get("metadata", {}).get("namespace")
        path = resource_path(resource, ns, name, subresource) if subresource else resource_path(resource, ns)
        return await self.request("POST", path, body=obj)

    async def update(self, resource: Resource, obj: dict[str, Any], *, subresource: str | None = None
                     ) -> dict[str, Any]:
        meta = obj["metadata"]
        path = resource_path(resource, meta.get("namespace"), meta["name"], subresource)
        return await self.request("PUT", path, body=obj)

    async def patch(self, resource: Resource, name: str, patch: Any, namespace: str | None = None, *,
                    patch_type: str = "merge", subresource: str | None = None,
                    field_manager: str | None = None, force: bool | None = None) -> dict[str, Any]:
        params = {"fieldManager": field_manager, "force": None if force is None else str(force).lower()}
        return await self.request("PATCH", resource_path(resource, namespace, name, subresource), params=params,
                                  body=patch, content_type=PATCH_TYPES[patch_type])

    async def delete(self, resource: Resource, name: str, namespace: str | None = None, *,
                     propagation_policy: str | None = None, grace_period_seconds: int | None = None,
                     preconditions: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if preconditions:
            body["preconditions"] = preconditions
        return await self.request("DELETE", resource_path(resource, namespace, name), body=body)

    async def watch(self, resource: Resource, namespace: str | None = None, *, resource_version: str | None = None,
                    label_selector: str | None = None, field_selector: str | None = None,
                    timeout_seconds: int | None = None, bookmarks: bool = True
                    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Yields (type, object) pairs. ERROR events are raised as ApiError (410 -> re-list)."""
        params = {"watch": "1", "resourceVersion": resource_version, "labelSelector": label_selector,
                  "fieldSelector": field_selector, "timeoutSeconds": timeout_seconds,
                  "allowWatchBookmarks": "true" if bookmarks else None}
        clean = {k: str(v) for k, v in params.items() if v is not None}
        async with self.session.get(self.base_url + resource_path(resource, namespace), params=clean,
                                    timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as resp:
            if resp.status >= 300:
                raise _error_from(resp.status, await resp.read())
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                while True:
                    nl = buffer.find(b"\n")
                    if nl < 0:
                        break
                    line, buffer = buffer[:nl], buffer[nl + 1:]
                    if not line.strip():
                        continue
                    event = orjson.loads(line)
                    etype, obj = event["type"], event["object"]
                    if etype == "ERROR":
                        raise ApiError(int(obj.get("code") or 500), obj.get("reason", ""), obj.get("message", ""))
                    yield etype, obj


def client_from_kubeconfig(path: str, *, user_agent: str = "nanokube") -> ApiClient:
    """An ApiClient for the current context of a kubeconfig written by `nanokube server`."""
    import base64

    import yaml

    with open(path) as fh:
        config = yaml.safe_load(fh)
    context = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
    ca_data = cluster.get("certificate-authority-data")
    # the CA goes straight into the TLS context (a temp file for it would be left behind in /tmp)
    return ApiClient(cluster["server"], user.get("token"), ca_file=cluster.get("certificate-authority"),
                     ca_data=base64.b64decode(ca_data).decode() if ca_data else None, user_agent=user_agent)


async def wait_until_ready(client: ApiClient, timeout: float = 10.0) -> None:
    """Wait until the API answers /readyz (used by components started in separate processes)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await client.request("GET", "/readyz")
            return
        except (aiohttp.ClientError, ApiError, OSError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)
