"""A kopf operator that defines its own resource: Greetings (example.nanokube.dev/v1). On start it creates the
CRD (and waits until it is established); a Greeting gets `status.message` and its handler's result in status;
renaming updates the message; deleting goes through kopf's finalizer.

    kopf run --standalone --namespace default kopf_greeter.py
"""

from __future__ import annotations

import os
import time
from typing import Any

import kopf
import kubernetes

GROUP, VERSION, PLURAL = "example.nanokube.dev", "v1", "greetings"
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "greeting", "kind": "Greeting", "shortNames": ["gr"]},
        "versions": [{
            "name": VERSION, "served": True, "storage": True,
            "subresources": {"status": {}},
            "additionalPrinterColumns": [
                {"name": "Name", "type": "string", "jsonPath": ".spec.name"},
                {"name": "Message", "type": "string", "jsonPath": ".status.message"},
            ],
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {"type": "object", "required": ["name"],
                             "properties": {"name": {"type": "string", "minLength": 1}}},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                },
            }},
        }],
    },
}


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    kubernetes.config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
def define_resource(logger: kopf.Logger, **_: Any) -> None:
    kubernetes.config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))  # startup runs before login
    api = kubernetes.client.ApiextensionsV1Api()
    try:
        api.create_custom_resource_definition(CRD)
        logger.info("created the Greeting CRD")
    except kubernetes.client.ApiException as exc:
        if exc.status != 409:
            raise
    deadline = time.monotonic() + 30
    while not any(c.type == "Established" and c.status == "True"
                  for c in api.read_custom_resource_definition(CRD["metadata"]["name"]).status.conditions or []):
        if time.monotonic() > deadline:
            raise kopf.PermanentError("the Greeting CRD was not established")
        time.sleep(0.1)


@kopf.on.create(GROUP, VERSION, PLURAL)
def greet(spec: kopf.Spec, patch: kopf.Patch, body: kopf.Body, **_: Any) -> dict[str, str]:
    patch.status["message"] = f"Hello, {spec['name']}!"
    kopf.info(body, reason="Greeted", message=f"greeted {spec['name']}")  # a core/v1 Event about the Greeting
    return {"greeted": spec["name"]}


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec.name")
def rename(new: str, patch: kopf.Patch, **_: Any) -> None:
    patch.status["message"] = f"Hello again, {new}!"


@kopf.on.delete(GROUP, VERSION, PLURAL)
def farewell(name: str, logger: kopf.Logger, **_: Any) -> None:
    logger.info(f"goodbye {name}")
