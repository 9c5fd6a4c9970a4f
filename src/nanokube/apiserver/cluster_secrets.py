"""One cluster CA and one API token for every API server on a shared store (etcd).

The first server to start puts its CA (certificate and key) and token under a store key that no API resource
serves; every other server adopts them before it issues its own serving certificate (with its own SANs), so a
kubeconfig made by any server works against all of them. (k3s shares its bootstrap data through the datastore
the same way; the values are as sensitive as etcd's own contents: give etcd client TLS on a real network.)
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from nanokube.apiserver.certs import ensure_certs
from nanokube.store.base import KeyExists, Store

SECRETS_KEY = "/registry/nanokube.io/cluster-secrets"


def _write_private(path: Path, data: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(data)
    os.replace(tmp, path)


async def share_cluster_secrets(store: Store, data_dir: Path, token: str) -> str:
    """Publish this server's CA and token if none is shared yet, else adopt the shared ones (a changed CA
    makes the next ensure_certs issue a new serving certificate). Returns the cluster's token."""
    pki = data_dir / "pki"
    kv = await store.get(SECRETS_KEY)
    if kv is None:
        ca_crt, ca_key = pki / "ca.crt", pki / "ca.key"
        if not (ca_crt.exists() and ca_key.exists()):
            ensure_certs(pki, ["127.0.0.1"], ["localhost"])
        mine = {"metadata": {"name": "cluster-secrets"}, "caCrt": ca_crt.read_text(), "caKey": ca_key.read_text(),
                "token": token}
        try:
            await store.create(SECRETS_KEY, mine)
            return token
        except KeyExists:
            kv = await store.get(SECRETS_KEY)
            assert kv is not None
    shared = orjson.loads(kv.value)
    pki.mkdir(parents=True, exist_ok=True)
    if not (pki / "ca.crt").exists() or (pki / "ca.crt").read_text() != shared["caCrt"]:
        _write_private(pki / "ca.key", shared["caKey"])
        (pki / "ca.crt").write_text(shared["caCrt"])
        (pki / "server.sans").unlink(missing_ok=True)  # re-issue the serving certificate under this CA
    if token != shared["token"]:
        _write_private(data_dir / "token", shared["token"] + "\n")
    return str(shared["token"])
