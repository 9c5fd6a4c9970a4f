"""Which Ingresses belong to this controller (the IngressClass rules of networking.k8s.io/v1)."""

from __future__ import annotations

from nanokube.api.meta import Obj

CLASS_NAME = "nanokube"
CONTROLLER = "nanokube.io/ingress-nginx"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"


def default_ingress_class() -> Obj:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": CLASS_NAME, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
            "spec": {"controller": CONTROLLER}}


def is_default(ingress_class: Obj) -> bool:
    annotations = ingress_class.get("metadata", {}).get("annotations") or {}
    return annotations.get(DEFAULT_CLASS_ANNOTATION) == "true"


def our_class_names(classes: list[Obj]) -> set[str]:
    return {c["metadata"]["name"] for c in classes if (c.get("spec") or {}).get("controller") == CONTROLLER}


def is_ours(ingress: Obj, classes: list[Obj]) -> bool:
    """spec.ingressClassName, else the legacy annotation, else the default class decides."""
    ours = our_class_names(classes)
    name = (ingress.get("spec") or {}).get("ingressClassName")
    if name is None:
        name = (ingress.get("metadata", {}).get("annotations") or {}).get(LEGACY_CLASS_ANNOTATION)
    if name is not None:
        return name in ours
    defaults = [c for c in classes if is_default(c)]
    return len(defaults) == 1 and defaults[0]["metadata"]["name"] in ours
