"""Decoding of Kubernetes' protobuf request bodies for the kinds kubectl's typed `create` commands send.

`kubectl create namespace|secret|configmap|serviceaccount|token` POST `application/vnd.kubernetes.protobuf`: the magic
`k8s\\0` followed by a runtime.Unknown {typeMeta, raw} whose raw bytes are the object message. Only the
messages below are understood; anything else gets 415 and kubectl's other commands keep using JSON.
Field numbers are those of k8s.io/api and k8s.io/apimachinery generated.proto.
"""

from __future__ import annotations

import base64
from typing import Any

from nanokube.api import errors
from nanokube.api.meta import rfc3339

MAGIC = b"k8s\x00"

# kind of a field: "string", "bytes", "int", "bool", "time", "map:string", "map:bytes",
# "list:string", ("msg", DESC), ("list:msg", DESC)
Desc = dict[int, tuple[str, Any]]

TIME: Desc = {1: ("seconds", "int"), 2: ("nanos", "int")}
OWNER_REFERENCE: Desc = {5: ("apiVersion", "string"), 1: ("kind", "string"), 3: ("name", "string"),
                         4: ("uid", "string"), 6: ("controller", "bool"), 7: ("blockOwnerDeletion", "bool")}
OBJECT_META: Desc = {
    1: ("name", "string"), 2: ("generateName", "string"), 3: ("namespace", "string"), 4: ("selfLink", "string"),
    5: ("uid", "string"), 6: ("resourceVersion", "string"), 7: ("generation", "int"),
    8: ("creationTimestamp", "time"), 9: ("deletionTimestamp", "time"), 10: ("deletionGracePeriodSeconds", "int"),
    11: ("labels", "map:string"), 12: ("annotations", "map:string"),
    13: ("ownerReferences", ("list:msg", OWNER_REFERENCE)), 14: ("finalizers", "list:string"),
}
NAMESPACE: Desc = {1: ("metadata", ("msg", OBJECT_META)), 2: ("spec", ("msg", {1: ("finalizers", "list:string")})),
                   3: ("status", ("msg", {1: ("phase", "string")}))}
SECRET: Desc = {1: ("metadata", ("msg", OBJECT_META)), 5: ("immutable", "bool"), 2: ("data", "map:bytes"),
                4: ("stringData", "map:string"), 3: ("type", "string")}
CONFIG_MAP: Desc = {1: ("metadata", ("msg", OBJECT_META)), 4: ("immutable", "bool"), 2: ("data", "map:string"),
                    3: ("binaryData", "map:bytes")}
INT_OR_STRING: Desc = {1: ("type", "int"), 2: ("intVal", "int"), 3: ("strVal", "string")}
SERVICE_PORT: Desc = {1: ("name", "string"), 2: ("protocol", "string"), 6: ("appProtocol", "string"),
                      3: ("port", "int"), 4: ("targetPort", "intstr"), 5: ("nodePort", "int")}
SERVICE_SPEC: Desc = {
    1: ("ports", ("list:msg", SERVICE_PORT)), 2: ("selector", "map:string"), 3: ("clusterIP", "string"),
    18: ("clusterIPs", "list:string"), 4: ("type", "string"), 5: ("externalIPs", "list:string"),
    7: ("sessionAffinity", "string"), 8: ("loadBalancerIP", "string"), 10: ("externalName", "string"),
    11: ("externalTrafficPolicy", "string"), 13: ("publishNotReadyAddresses", "bool"),
    19: ("ipFamilies", "list:string"), 17: ("ipFamilyPolicy", "string"), 21: ("loadBalancerClass", "string"),
    22: ("internalTrafficPolicy", "string"),
}
SERVICE: Desc = {1: ("metadata", ("msg", OBJECT_META)), 2: ("spec", ("msg", SERVICE_SPEC))}
CONTAINER_PORT: Desc = {1: ("name", "string"), 2: ("hostPort", "int"), 3: ("containerPort", "int"),
                        4: ("protocol", "string"), 5: ("hostIP", "string")}
ENV_VAR: Desc = {1: ("name", "string"), 2: ("value", "string")}
CONTAINER: Desc = {
    1: ("name", "string"), 2: ("image", "string"), 3: ("command", "list:string"), 4: ("args", "list:string"),
    5: ("workingDir", "string"), 6: ("ports", ("list:msg", CONTAINER_PORT)), 7: ("env", ("list:msg", ENV_VAR)),
    8: ("resources", ("msg", {})), 13: ("terminationMessagePath", "string"),
    20: ("terminationMessagePolicy", "string"), 14: ("imagePullPolicy", "string"),
}
POD_SPEC: Desc = {
    20: ("initContainers", ("list:msg", CONTAINER)), 2: ("containers", ("list:msg", CONTAINER)),
    3: ("restartPolicy", "string"), 4: ("terminationGracePeriodSeconds", "int"), 6: ("dnsPolicy", "string"),
    7: ("nodeSelector", "map:string"), 8: ("serviceAccountName", "string"), 10: ("nodeName", "string"),
    16: ("hostname", "string"), 17: ("subdomain", "string"), 19: ("schedulerName", "string"),
    30: ("enableServiceLinks", "bool"),
}
POD: Desc = {1: ("metadata", ("msg", OBJECT_META)), 2: ("spec", ("msg", POD_SPEC))}
LABEL_SELECTOR: Desc = {1: ("matchLabels", "map:string")}
POD_TEMPLATE: Desc = {1: ("metadata", ("msg", OBJECT_META)), 2: ("spec", ("msg", POD_SPEC))}
DEPLOYMENT_SPEC: Desc = {1: ("replicas", "int0"), 2: ("selector", ("msg", LABEL_SELECTOR)),
                         3: ("template", ("msg", POD_TEMPLATE)),
                         4: ("strategy", ("msg", {1: ("type", "string")})), 5: ("minReadySeconds", "int"),
                         6: ("revisionHistoryLimit", "int0"), 7: ("paused", "bool"),
                         9: ("progressDeadlineSeconds", "int0")}
DEPLOYMENT: Desc = {1: ("metadata", ("msg", OBJECT_META)), 2: ("spec", ("msg", DEPLOYMENT_SPEC))}
BOUND_OBJECT_REFERENCE: Desc = {1: ("kind", "string"), 2: ("apiVersion", "string"), 3: ("name", "string"),
                                4: ("uid", "string")}
TOKEN_REQUEST: Desc = {1: ("metadata", ("msg", OBJECT_META)), 2: ("spec", ("msg", {
    1: ("audiences", "list:string"), 4: ("expirationSeconds", "int"),
    3: ("boundObjectRef", ("msg", BOUND_OBJECT_REFERENCE))}))}
RESOURCE_ATTRIBUTES: Desc = {1: ("namespace", "string"), 2: ("verb", "string"), 3: ("group", "string"),
                             4: ("version", "string"), 5: ("resource", "string"), 6: ("subresource", "string"),
                             7: ("name", "string")}
NON_RESOURCE_ATTRIBUTES: Desc = {1: ("path", "string"), 2: ("verb", "string")}
ACCESS_REVIEW_SPEC: Desc = {1: ("resourceAttributes", ("msg", RESOURCE_ATTRIBUTES)),
                            2: ("nonResourceAttributes", ("msg", NON_RESOURCE_ATTRIBUTES)), 3: ("user", "string"),
                            4: ("groups", "list:string"), 6: ("uid", "string")}
SELF_SUBJECT_ACCESS_REVIEW: Desc = {1: ("metadata", ("msg", OBJECT_META)), 2: ("spec", ("msg", ACCESS_REVIEW_SPEC))}
SELF_SUBJECT_RULES_REVIEW: Desc = {1: ("metadata", ("msg", OBJECT_META)),
                                   2: ("spec", ("msg", {1: ("namespace", "string")}))}
SELF_SUBJECT_REVIEW: Desc = {1: ("metadata", ("msg", OBJECT_META))}
TYPE_META: Desc = {1: ("apiVersion", "string"), 2: ("kind", "string")}
UNKNOWN: Desc = {1: ("typeMeta", ("msg", TYPE_META)), 2: ("raw", "bytes"), 3: ("contentEncoding", "string"),
                 4: ("contentType", "string")}

KINDS: dict[str, Desc] = {"Namespace": NAMESPACE, "Secret": SECRET, "ConfigMap": CONFIG_MAP, "Service": SERVICE,
                          "Pod": POD, "Deployment": DEPLOYMENT, "TokenRequest": TOKEN_REQUEST,
                          "SelfSubjectReview": SELF_SUBJECT_REVIEW, "SelfSubjectAccessReview": SELF_SUBJECT_ACCESS_REVIEW,
                          "SubjectAccessReview": SELF_SUBJECT_ACCESS_REVIEW,
                          "LocalSubjectAccessReview": SELF_SUBJECT_ACCESS_REVIEW,
                          "SelfSubjectRulesReview": SELF_SUBJECT_RULES_REVIEW}


class _Zero(int):
    """An int that stays in the JSON even when 0 (a Go pointer field that was set)."""


class _Set:
    """A bool that stays in the JSON even when false (a Go *bool that was set)."""

    __slots__ = ("value",)

    def __init__(self, value: bool) -> None:
        self.value = value


class _Malformed(Exception):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _Malformed("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int, Any]]:
    out, pos = [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise _Malformed("truncated field")
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise _Malformed(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _map_entry(raw: bytes) -> tuple[str, bytes]:
    key, value = "", b""
    for number, _wire, v in _fields(raw):
        if number == 1:
            key = v.decode()
        elif number == 2:
            value = v
    return key, value


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def decode_message(buf: bytes, desc: Desc) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for number, _wire, value in _fields(buf):
        if number not in desc:
            continue
        name, kind = desc[number]
        if kind == "string":
            obj[name] = value.decode()
        elif kind == "bytes":
            obj[name] = value
        elif kind == "int":
            obj[name] = _signed(value)
        elif kind == "int0":
            obj[name] = _Zero(_signed(value))
        elif kind == "intstr":
            v = decode_message(value, INT_OR_STRING)
            obj[name] = v.get("strVal", "") if v.get("type") == 1 else _Zero(v.get("intVal", 0))  # set, even if 0
        elif kind == "bool":
            obj[name] = bool(value)
        elif kind == "bool0":  # an optional bool that was set: kept even when false
            obj[name] = _Set(bool(value))
        elif kind == "time":
            t = decode_message(value, TIME)
            obj[name] = rfc3339(float(t.get("seconds", 0)))
        elif kind == "map:string":
            k, v = _map_entry(value)
            obj.setdefault(name, {})[k] = v.decode()
        elif kind == "map:quantity":  # resource.Quantity is {string = 1}
            k, v = _map_entry(value)
            obj.setdefault(name, {})[k] = decode_message(v, {1: ("string", "string")}).get("string", "0")
        elif kind == "map:bytes":
            k, v = _map_entry(value)
            obj.setdefault(name, {})[k] = base64.b64encode(v).decode()
        elif kind == "list:string":
            obj.setdefault(name, []).append(value.decode())
        elif kind[0] == "msg":
            obj[name] = decode_message(value, kind[1])
        elif kind[0] == "list:msg":
            obj.setdefault(name, []).append(decode_message(value, kind[1]))
        elif kind[0] == "inline":  # an embedded struct whose fields JSON shows on the parent
            obj.update(decode_message(value, kind[1]))
    # Go omits empty optional fields from JSON; proto3 encodes them as zero values.
    return {k: (int(v) if isinstance(v, _Zero) else v.value if isinstance(v, _Set) else v) for k, v in obj.items()
            if isinstance(v, (list, _Zero, _Set)) or v not in ("", 0, False, {})}


def decode_body(raw: bytes) -> dict[str, Any]:
    if not raw.startswith(MAGIC):
        raise errors.bad_request("provided protobuf body is missing the k8s magic prefix")
    try:
        unknown = decode_message(raw[len(MAGIC):], UNKNOWN)
        type_meta = unknown.get("typeMeta", {})
        kind = type_meta.get("kind", "")
        desc = KINDS.get(kind)
        if desc is None:
            raise errors.ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                                  "accepted media types include: application/json, application/yaml "
                                  f"(protobuf is decoded for {', '.join(sorted(KINDS))}, not {kind or 'this kind'})")
        obj = decode_message(unknown.get("raw", b""), desc)
    except _Malformed as exc:
        raise errors.bad_request(f"unable to decode protobuf body: {exc}") from exc
    obj["kind"] = kind
    obj["apiVersion"] = type_meta.get("apiVersion", "v1")
    return obj


def _more_kinds() -> None:
    from nanokube.apiserver import protobuf_kinds  # descriptors built from the ones above

    KINDS.update(protobuf_kinds.KINDS)


_more_kinds()
