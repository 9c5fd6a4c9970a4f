"""An example operator written with kopf: it copies ConfigMaps into other namespaces.

A ConfigMap annotated `example.nanokube.dev/replicate-to: "team-a,team-b"` gets a copy (same name, same data,
labelled `example.nanokube.dev/replica-of: <namespace>`) in each namespace listed; changing its data updates
the copies, and deleting it deletes them.

    kopf run --all-namespaces --standalone replicator.py
"""

from __future__ import annotations

import os
from typing import Any

import kopf
import kubernetes

ANNOTATION = "example.nanokube.dev/replicate-to"
REPLICA_LABEL = "example.nanokube.dev/replica-of"


def _targets(annotations: dict[str, str]) -> list[str]:
    return [ns.strip() for ns in annotations.get(ANNOTATION, "").split(",") if ns.strip()]


def _core() -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api()


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # the kubeconfig in $KUBECONFIG (read now: the client reads the variable once, when first imported), for
    # kopf and for the kubernetes client the handlers use
    kubernetes.config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.on.create("configmaps", annotations={ANNOTATION: kopf.PRESENT})
@kopf.on.update("configmaps", annotations={ANNOTATION: kopf.PRESENT})
@kopf.on.resume("configmaps", annotations={ANNOTATION: kopf.PRESENT})
def replicate(name: str, namespace: str, annotations: dict[str, str], body: kopf.Body,
              logger: kopf.Logger, **_: Any) -> dict[str, list[str]]:
    copies = []
    for target in _targets(annotations):
        replica = {"metadata": {"name": name, "namespace": target, "labels": {REPLICA_LABEL: namespace}},
                   "data": dict(body.get("data") or {})}
        try:
            _core().replace_namespaced_config_map(name, target, replica)
        except kubernetes.client.ApiException as exc:
            if exc.status != 404:
                raise
            _core().create_namespaced_config_map(target, replica)
        copies.append(target)
        logger.info(f"replicated {namespace}/{name} to {target}")
    return {"copies": copies}


@kopf.on.delete("configmaps", annotations={ANNOTATION: kopf.PRESENT})
def unreplicate(name: str, namespace: str, annotations: dict[str, str], logger: kopf.Logger, **_: Any) -> None:
    for target in _targets(annotations):
        try:
            _core().delete_namespaced_config_map(name, target)
        except kubernetes.client.ApiException as exc:
            if exc.status != 404:
                raise
        logger.info(f"removed the copy of {namespace}/{name} from {target}")
