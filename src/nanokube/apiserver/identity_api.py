"""Who a request is and what it may do, as API objects: TokenRequest (serviceaccounts/token), SelfSubjectReview
(`kubectl auth whoami`), SelfSubjectAccessReview / SubjectAccessReview (`kubectl auth can-i [--as]`) and
SelfSubjectRulesReview (`kubectl auth can-i --list`). All are create-only and answer 201 with the status filled."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from nanokube.api import errors, meta
from nanokube.api.meta import Obj
from nanokube.api.served_resources import by_kind
from nanokube.apiserver import rbac, tokens
from nanokube.apiserver.http import decode_body, json_response, read_body
from nanokube.apiserver.tokens import UserInfo

SERVICE_ACCOUNTS = by_kind("", "ServiceAccount")
GROUPS = ("authentication.k8s.io", "authorization.k8s.io")


def handles(t: Any) -> bool:
    return t.res.group in GROUPS or (t.res is SERVICE_ACCOUNTS and t.subresource == "token")


async def serve(registry: Any, signer: tokens.TokenSigner | None, request: web.Request, t: Any) -> web.Response:
    if request.method != "POST" or (t.name is not None and t.subresource != "token"):
        raise errors.method_not_allowed("the server does not allow this method on the requested resource")
    body = decode_body(await read_body(request), request.headers.get("Content-Type", "application/json"))
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request was not a JSON object")
    user: UserInfo = request.get("user") or tokens.ADMIN
    if t.subresource == "token":
        return await _token_request(registry, signer, t, body)
    kind = t.res.kind
    spec = body.get("spec") or {}
    out: Obj = {"kind": kind, "apiVersion": t.res.api_version,
                "metadata": {**(body.get("metadata") or {}), "creationTimestamp": None}}
    if kind == "SelfSubjectReview":
        out["status"] = {"userInfo": user.as_json()}
    elif kind in ("SelfSubjectAccessReview", "SubjectAccessReview", "LocalSubjectAccessReview"):
        subject = user if kind == "SelfSubjectAccessReview" else UserInfo(
            spec.get("user") or "", spec.get("uid") or "", tuple(spec.get("groups") or ()))
        if kind == "LocalSubjectAccessReview":
            spec.setdefault("resourceAttributes", {})["namespace"] = t.namespace
        ok = await rbac.allowed(registry, subject, _review_attributes(spec))
        out["spec"] = spec
        out["status"] = {"allowed": ok} if not ok else {"allowed": True, "reason": _reason(subject)}
    elif kind == "SelfSubjectRulesReview":
        ns = spec.get("namespace") or ""
        rules = await rbac.rules_for(registry, user, ns) if rbac.MASTERS not in user.groups else \
            rbac.DEFAULT_CLUSTER_ROLES["cluster-admin"]
        out["spec"] = spec
        out["status"] = {
            "resourceRules": [{k: r[k] for k in ("verbs", "apiGroups", "resources", "resourceNames") if r.get(k)}
                              for r in rules if not r.get("nonResourceURLs")],
            "nonResourceRules": [{"verbs": r["verbs"], "nonResourceURLs": r["nonResourceURLs"]}
                                 for r in rules if r.get("nonResourceURLs")],
            "incomplete": False}
    else:
        raise errors.method_not_allowed("the server does not allow this method on the requested resource")
    return json_response(out, 201)


def _reason(user: UserInfo) -> str:
    if rbac.MASTERS in user.groups:
        return ""
    return "RBAC: allowed by a role binding"


def _review_attributes(spec: Obj) -> rbac.Attributes:
    if spec.get("nonResourceAttributes"):
        attrs = spec["nonResourceAttributes"]
        return rbac.Attributes(verb=attrs.get("verb") or "", resource_request=False, path=attrs.get("path") or "")
    attrs = spec.get("resourceAttributes") or {}
    return rbac.Attributes(verb=attrs.get("verb") or "", resource_request=True, namespace=attrs.get("namespace") or "",
                           api_group=attrs.get("group") or "", resource=attrs.get("resource") or "",
                           subresource=attrs.get("subresource") or "", name=attrs.get("name") or "")


async def _token_request(registry: Any, signer: tokens.TokenSigner | None, t: Any, body: Obj) -> web.Response:
    if signer is None:
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource", {})
    sa = await registry.get(SERVICE_ACCOUNTS, t.namespace, t.name)
    spec = body.get("spec") or {}
    seconds = spec.get("expirationSeconds") or tokens.DEFAULT_SECONDS
    if not isinstance(seconds, int) or seconds < tokens.MIN_SECONDS or seconds > tokens.MAX_SECONDS:
        detail = "may not specify a duration less than 10 minutes" if isinstance(seconds, int) and \
            seconds < tokens.MIN_SECONDS else "may not specify a duration larger than 2^32 seconds"
        raise errors.invalid_object("authentication.k8s.io", "TokenRequest", t.name,
                                    [errors.invalid("spec.expirationSeconds", seconds, detail)])
    audiences = list(spec.get("audiences") or tokens.AUDIENCES)
    bound = spec.get("boundObjectRef")
    if bound:
        kind = bound.get("kind")
        if kind not in ("Pod", "Secret"):
            raise errors.invalid_object("authentication.k8s.io", "TokenRequest", t.name, [
                errors.invalid("spec.boundObjectRef.kind", kind, "must be one of Pod, Secret")])
        target = await registry.get(by_kind("", kind), t.namespace, bound.get("name", ""))
        if bound.get("uid") and bound["uid"] != target["metadata"].get("uid"):
            raise errors.conflict("", kind.lower() + "s", bound.get("name", ""), "the UID in the bound object "
                                  "reference does not match the object")
        bound = {"kind": kind, "name": bound.get("name", ""), "uid": target["metadata"].get("uid", "")}
    token, expires = signer.issue(t.namespace, t.name, sa["metadata"].get("uid", ""), seconds=seconds,
                                  audiences=audiences, bound=bound)
    out = {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
           "metadata": {"name": t.name, "namespace": t.namespace, "creationTimestamp": meta.rfc3339()},
           "spec": {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": spec.get("boundObjectRef")},
           "status": {"token": token, "expirationTimestamp": meta.rfc3339(_utc(expires))}}
    return json_response(out, 201)


def _utc(epoch: int) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC)


async def identify(registry: Any, signer: tokens.TokenSigner | None, token: str) -> UserInfo | None:
    """The ServiceAccount a token stands for, when it is ours, unexpired, and the account (and the object it is
    bound to) still exists with the same uid."""
    if signer is None:
        return None
    claims = signer.verify(token)
    if claims is None:
        return None
    private = claims.get("kubernetes.io") or {}
    ns, account = private.get("namespace", ""), private.get("serviceaccount") or {}
    try:
        sa = await registry.get(SERVICE_ACCOUNTS, ns, account.get("name", ""))
    except errors.ApiError:
        return None
    if account.get("uid") and sa["metadata"].get("uid") != account["uid"]:
        return None
    extra: dict[str, list[str]] = {}
    for kind in ("pod", "secret"):
        bound = private.get(kind)
        if bound:
            try:
                obj = await registry.get(by_kind("", kind.capitalize()), ns, bound.get("name", ""))
            except errors.ApiError:
                return None
            if bound.get("uid") and obj["metadata"].get("uid") != bound["uid"]:
                return None
            extra[f"authentication.kubernetes.io/{kind}-name"] = [bound.get("name", "")]
            extra[f"authentication.kubernetes.io/{kind}-uid"] = [bound.get("uid", "")]
    extra["authentication.kubernetes.io/credential-id"] = [f"JTI={claims.get('jti', '')}"]
    return tokens.service_account_user(ns, account.get("name", ""), sa["metadata"].get("uid", ""), extra)
