"""Manifests of the netns end-to-end tests: nanokube/echo Deployments and the Services in front of them."""

from __future__ import annotations

from nanokube.api.meta import Obj


def echo_deployment(name: str, replicas: int, namespace: str = "default") -> Obj:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {
                         "terminationGracePeriodSeconds": 5,
                         "containers": [{"name": "echo", "image": "nanokube/echo",
                                         "ports": [{"name": "http", "containerPort": 8080}]}]}}}}


def service(name: str, app: str, *, type: str = "ClusterIP", port: int = 80, node_port: int | None = None,
            namespace: str = "default") -> Obj:
    spec_port: Obj = {"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}
    if node_port is not None:
        spec_port["nodePort"] = node_port
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"type": type, "selector": {"app": app}, "ports": [spec_port]}}


def namespace(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
