"""Strategies of the built-in kinds served generically: defaulting (builtin_defaults), what a create
prepares (pkg/registry/<group>/<kind>/strategy.go PrepareForCreate: empty status, generated Job selectors),
and validation = the schema's required fields plus the few cross-field rules users meet first.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

from nanokube.api import cron, schema_required
from nanokube.api.errors import FieldError, GoLiteral, forbidden, go_quote, invalid, not_supported, required
from nanokube.api.meta import Obj
from nanokube.api.selectors import matches_labels, selector_from_label_selector
from nanokube.api.served_resources import Resource, by_kind
from nanokube.apiserver import builtin_defaults as d
from nanokube.apiserver.strategies import Strategy

Validator = Callable[[Obj], list[FieldError]]

# Kinds whose metadata.generation Kubernetes maintains (set to 1 on create, bumped on spec changes).
GENERATION = {"statefulsets", "daemonsets", "jobs", "cronjobs", "replicationcontrollers", "ingresses",
              "networkpolicies", "poddisruptionbudgets"}

# What PrepareForCreate leaves in status: the zero status struct, as its non-omitempty fields encode it.
_INITIAL_STATUS: dict[str, Obj] = {
    "statefulsets": {"replicas": 0, "availableReplicas": 0},
    "daemonsets": {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                   "numberReady": 0},
    "replicationcontrollers": {"replicas": 0},
    "jobs": {},
    "cronjobs": {},
    "horizontalpodautoscalers": {"desiredReplicas": 0},
    "poddisruptionbudgets": {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0},
    "ingresses": {"loadBalancer": {}},
    "resourcequotas": {},
}

JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_UID_LABEL = "controller-uid"
LEGACY_NAME_LABEL = "job-name"


def _schema_validator(res: Resource, extra: Validator | None = None) -> Validator:
    def validate(obj: Obj) -> list[FieldError]:
        errs = schema_required.missing_required(res.group, res.version, res.kind, obj)
        if extra is not None:
            errs.extend(extra(obj))
        return errs
    return validate


def _go_string_map(labels: dict[str, Any]) -> GoLiteral:
    """`%#v` of a map[string]string: keys sorted, `"k":"v"` pairs joined by ", "."""
    pairs = ", ".join(f"{go_quote(str(k))}:{go_quote(str(v))}" for k, v in sorted(labels.items()))
    return GoLiteral("map[string]string{" + pairs + "}")


def _replicas(spec: Obj) -> list[FieldError]:
    value = spec.get("replicas")
    if isinstance(value, int) and value < 0:
        return [invalid("spec.replicas", value, "must be greater than or equal to 0")]
    return []


def _template_containers(template: Obj, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, container in enumerate((template.get("spec") or {}).get("containers") or []):
        if isinstance(container, dict) and not container.get("image"):
            errs.append(required(f"{path}.spec.containers[{i}].image"))
    return errs


def _restart_policy(template: Obj, path: str, allowed: tuple[str, ...]) -> list[FieldError]:
    policy = (template.get("spec") or {}).get("restartPolicy")
    if policy not in allowed:
        return [not_supported(f"{path}.spec.restartPolicy", policy, list(allowed))]
    return []


def _selected_template(kind: str) -> Validator:
    """Selector set, not empty, matching the template's labels (StatefulSet, DaemonSet)."""
    def validate(obj: Obj) -> list[FieldError]:
        spec = obj.get("spec") or {}
        errs = _replicas(spec)
        template = spec.get("template") or {}
        selector = spec.get("selector")
        if selector:
            reqs = selector_from_label_selector(selector) or []
            labels = (template.get("metadata") or {}).get("labels") or {}
            if not reqs:
                errs.append(invalid("spec.selector", selector, f"empty selector is invalid for {kind}"))
            elif template and not matches_labels(reqs, labels):
                errs.append(invalid("spec.template.metadata.labels", _go_string_map(labels),
                                    "`selector` does not match template `labels`"))
        if template:
            errs.extend(_template_containers(template, "spec.template"))
            errs.extend(_restart_policy(template, "spec.template", ("Always",)))
        return errs
    return validate


def _validate_replication_controller(obj: Obj) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errs = _replicas(spec)
    selector = spec.get("selector") or {}
    template = spec.get("template")
    if not selector:
        errs.append(required("spec.selector"))
    if isinstance(template, dict):
        labels = (template.get("metadata") or {}).get("labels") or {}
        if selector and any(labels.get(k) != v for k, v in selector.items()):
            errs.append(invalid("spec.template.metadata.labels", _go_string_map(labels),
                                "`selector` does not match template `labels`"))
        errs.extend(_template_containers(template, "spec.template"))
        errs.extend(_restart_policy(template, "spec.template", ("Always",)))
    else:
        errs.append(required("spec.template"))
    return errs


def _validate_job_spec(spec: Obj, path: str) -> list[FieldError]:
    template = spec.get("template") or {}
    errs: list[FieldError] = []
    for field in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
                  "ttlSecondsAfterFinished"):
        value = spec.get(field)
        if isinstance(value, int) and value < 0:
            errs.append(invalid(f"{path}.{field}", value, "must be greater than or equal to 0"))
    if template:
        errs.extend(_template_containers(template, f"{path}.template"))
        errs.extend(_restart_policy(template, f"{path}.template", ("OnFailure", "Never")))
    return errs


def _validate_job(obj: Obj) -> list[FieldError]:
    return _validate_job_spec(obj.get("spec") or {}, "spec")


def _validate_cron_job(obj: Obj, allow_tz_in_schedule: bool = False) -> list[FieldError]:
    spec = obj.get("spec") or {}
    template = spec.get("jobTemplate") or {}
    errs = _validate_job_spec(template.get("spec") or {}, "spec.jobTemplate.spec")
    schedule = spec.get("schedule")
    if isinstance(schedule, str) and schedule:  # validateScheduleFormat
        try:
            cron.parse(schedule)
        except cron.CronError as exc:
            errs.append(invalid("spec.schedule", schedule, str(exc)))
        if "TZ" in schedule and allow_tz_in_schedule and spec.get("timeZone") is not None:
            errs.append(invalid("spec.schedule", schedule, "cannot use both timeZone field and TZ or CRON_TZ in "
                                                           "schedule"))
        elif "TZ" in schedule and not allow_tz_in_schedule:
            errs.append(invalid("spec.schedule", schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone "
                                                           "field instead"))
    zone = spec.get("timeZone")
    if isinstance(zone, str):  # validateTimeZone
        if not zone:
            errs.append(invalid("spec.timeZone", zone, "timeZone must be nil or non-empty string"))
        elif zone.lower() == "local":
            errs.append(invalid("spec.timeZone", zone, "timeZone must be an explicit time zone as defined in "
                                                       "https://www.iana.org/time-zones"))
        elif cron.load_zone(zone) is None:
            errs.append(invalid("spec.timeZone", zone, f"unknown time zone {zone}"))
    return errs


def _cron_job_update(validate: Validator) -> Callable[[Obj, Obj], list[FieldError]]:
    """An existing schedule with TZ= may stay (allowTZInSchedule when the old one had it)."""
    def validate_update(old: Obj, new: Obj) -> list[FieldError]:
        if "TZ" in str((old.get("spec") or {}).get("schedule") or ""):
            errs = [e for e in validate(new) if "use timeZone field instead" not in e.detail]
            return errs + [e for e in _validate_cron_job(new, allow_tz_in_schedule=True)
                           if "cannot use both" in e.detail]
        return validate(new)
    return validate_update


def _initial_status(plural: str) -> Callable[[Obj], None]:
    status = _INITIAL_STATUS[plural]

    def prepare(obj: Obj) -> None:
        obj["status"] = copy.deepcopy(status)
    return prepare


def _prepare_job(obj: Obj) -> None:
    """PrepareForCreate of jobs: empty status and, unless manualSelector, the generated selector and labels."""
    obj["status"] = {}
    spec = obj.setdefault("spec", {})
    if spec.get("manualSelector"):
        return
    md = obj["metadata"]
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    for key, value in ((LEGACY_NAME_LABEL, md["name"]), (JOB_NAME_LABEL, md["name"]),
                       (LEGACY_UID_LABEL, md["uid"]), (JOB_UID_LABEL, md["uid"])):
        labels.setdefault(key, value)
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        selector = spec["selector"] = {}
    match = selector.get("matchLabels")
    if not isinstance(match, dict):
        match = selector["matchLabels"] = {}
    match.setdefault(JOB_UID_LABEL, md["uid"])
    # SetDefaults_Job copies template labels to a job without labels; Kubernetes runs it again on every read
    # from storage, so a job created without labels shows the generated ones: settle that at create.
    if not md.get("labels"):
        md["labels"] = dict(labels)


def _validate_job_selector(obj: Obj) -> list[FieldError]:
    """ValidateGeneratedSelector: a generated selector must select the job's uid and match its template."""
    spec = obj.get("spec") or {}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    reqs = selector_from_label_selector(spec.get("selector")) or []
    errs: list[FieldError] = []
    if not spec.get("manualSelector"):
        uid = obj["metadata"].get("uid")
        if (spec.get("selector") or {}).get("matchLabels", {}).get(JOB_UID_LABEL) != uid:
            errs.append(invalid("spec.selector", spec.get("selector"), "`selector` not auto-generated"))
    elif not spec.get("selector"):
        errs.append(required("spec.selector"))
    if reqs and not matches_labels(reqs, labels):
        errs.append(invalid("spec.template.metadata.labels", _go_string_map(labels), "`selector` does not match template `labels`"))
    return errs


# ValidateStatefulSetUpdate: the spec fields an update may change.
_STATEFUL_SET_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy",
                         "minReadySeconds", "revisionHistoryLimit")


def _go_label_selector(selector: Obj | None) -> GoLiteral:
    """`%#v` of a *metav1.LabelSelector, as "field is immutable" errors print it."""
    if selector is None:
        return GoLiteral("(*v1.LabelSelector)(nil)")
    labels = selector.get("matchLabels")
    match = _go_string_map(labels).text if labels else "map[string]string(nil)"
    exprs = selector.get("matchExpressions")
    if exprs:
        items = ", ".join(
            f"v1.LabelSelectorRequirement{{Key:{go_quote(str(e.get('key', '')))}, "
            f"Operator:{go_quote(str(e.get('operator', '')))}, Values:"
            + ("[]string{" + ", ".join(go_quote(str(v)) for v in e["values"]) + "}" if e.get("values")
               else "[]string(nil)") + "}" for e in exprs)
        expressions = f"[]v1.LabelSelectorRequirement{{{items}}}"
    else:
        expressions = "[]v1.LabelSelectorRequirement(nil)"
    return GoLiteral(f"&v1.LabelSelector{{MatchLabels:{match}, MatchExpressions:{expressions}}}")


def _immutable_selector(old: Obj, new: Obj) -> list[FieldError]:
    old_sel, new_sel = (old.get("spec") or {}).get("selector"), (new.get("spec") or {}).get("selector")
    if old_sel != new_sel:
        return [invalid("spec.selector", _go_label_selector(new_sel), "field is immutable")]
    return []


def _stateful_set_update(validate: Validator) -> Callable[[Obj, Obj], list[FieldError]]:
    def validate_update(old: Obj, new: Obj) -> list[FieldError]:
        errs = validate(new)
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        keys = (set(old_spec) | set(new_spec)) - set(_STATEFUL_SET_MUTABLE)
        if any(old_spec.get(k) != new_spec.get(k) for k in keys):
            errs.append(forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                                  "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                                  "'minReadySeconds' are forbidden"))
        return errs
    return validate_update


def _daemon_set_update(validate: Validator) -> Callable[[Obj, Obj], list[FieldError]]:
    def validate_update(old: Obj, new: Obj) -> list[FieldError]:
        return [*validate(new), *_immutable_selector(old, new)]
    return validate_update


RBAC_GROUP = "rbac.authorization.k8s.io"


def _validate_rules(rules: list[Obj] | None, namespaced: bool) -> list[FieldError]:
    """ValidatePolicyRule of pkg/apis/rbac/validation."""
    errs: list[FieldError] = []
    for i, rule in enumerate(rules or []):
        path = f"rules[{i}]"
        if not rule.get("verbs"):
            errs.append(required(f"{path}.verbs", "verbs must contain at least one value"))
        if rule.get("nonResourceURLs"):
            if namespaced:
                errs.append(invalid(f"{path}.nonResourceURLs", GoLiteral(
                    "[]string{" + ", ".join(go_quote(str(u)) for u in rule["nonResourceURLs"]) + "}"),
                    "namespaced rules cannot apply to non-resource URLs"))
            if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                errs.append(invalid(f"{path}.nonResourceURLs", GoLiteral(
                    "[]string{" + ", ".join(go_quote(str(u)) for u in rule["nonResourceURLs"]) + "}"),
                    "rules cannot apply to both regular resources and non-resource URLs"))
            continue
        if not rule.get("apiGroups"):
            errs.append(required(f"{path}.apiGroups", "resource rules must supply at least one api group"))
        if not rule.get("resources"):
            errs.append(required(f"{path}.resources", "resource rules must supply at least one resource"))
    return errs


def _validate_binding(obj: Obj, cluster: bool) -> list[FieldError]:
    """ValidateRoleBinding / ValidateClusterRoleBinding and ValidateRoleBindingSubject."""
    errs: list[FieldError] = []
    ref = obj.get("roleRef") or {}
    if ref.get("apiGroup") and ref["apiGroup"] != RBAC_GROUP:
        errs.append(FieldError("FieldValueNotSupported", "roleRef.apiGroup", ref["apiGroup"],
                               f'supported values: "{RBAC_GROUP}"'))
    kinds = ("ClusterRole",) if cluster else ("Role", "ClusterRole")
    if ref.get("kind") and ref["kind"] not in kinds:
        errs.append(FieldError("FieldValueNotSupported", "roleRef.kind", ref["kind"],
                               "supported values: " + ", ".join(f'"{k}"' for k in kinds)))
    for i, subject in enumerate(obj.get("subjects") or []):
        path = f"subjects[{i}]"
        kind = subject.get("kind")
        if kind == "ServiceAccount":
            if subject.get("apiGroup"):
                errs.append(FieldError("FieldValueNotSupported", f"{path}.apiGroup", subject["apiGroup"],
                                       'supported values: ""'))
            if cluster and not subject.get("namespace"):
                errs.append(required(f"{path}.namespace"))
        elif kind in ("User", "Group"):
            if subject.get("apiGroup") != RBAC_GROUP:
                errs.append(FieldError("FieldValueNotSupported", f"{path}.apiGroup", subject.get("apiGroup") or "",
                                       f'supported values: "{RBAC_GROUP}"'))
        elif kind:
            errs.append(FieldError("FieldValueNotSupported", f"{path}.kind", kind,
                                   'supported values: "ServiceAccount", "User", "Group"'))
    return errs


def _binding_update(validate: Validator) -> Callable[[Obj, Obj], list[FieldError]]:
    def validate_update(old: Obj, new: Obj) -> list[FieldError]:
        errs = validate(new)
        if (old.get("roleRef") or {}) != (new.get("roleRef") or {}):
            ref = new.get("roleRef") or {}
            errs.append(invalid("roleRef", GoLiteral(
                f"rbac.RoleRef{{APIGroup:{go_quote(str(ref.get('apiGroup', '')))}, Kind:{go_quote(str(ref.get('kind', '')))}"
                f", Name:{go_quote(str(ref.get('name', '')))}}}"), "cannot change roleRef"))
        return errs
    return validate_update


def _validate_pdb(obj: Obj) -> list[FieldError]:
    spec = obj.get("spec") or {}
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        return [invalid("spec", GoLiteral("policy.PodDisruptionBudgetSpec{...}"),
                        "minAvailable and maxUnavailable cannot be both set")]
    return []


def _job_update(validate: Validator) -> Callable[[Obj, Obj], list[FieldError]]:
    """ValidateJobSpecUpdate: selector, completion mode and (but for elastic Indexed jobs) completions are
    immutable; the pod template too, except while a job that never started is suspended. The template's value
    is Go's dump of the internal struct in Kubernetes; here a short stand-in."""
    def validate_update(old: Obj, new: Obj) -> list[FieldError]:
        errs = validate(new)
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        if old_spec.get("selector") != new_spec.get("selector"):
            errs.append(invalid("spec.selector", _go_label_selector(new_spec.get("selector")), "field is immutable"))
        if old_spec.get("completionMode") != new_spec.get("completionMode"):
            errs.append(invalid("spec.completionMode", new_spec.get("completionMode"), "field is immutable"))
        elastic = new_spec.get("completionMode") == "Indexed" and \
            new_spec.get("completions") == new_spec.get("parallelism")
        if old_spec.get("completions") != new_spec.get("completions") and not elastic:
            errs.append(invalid("spec.completions", new_spec.get("completions"), "field is immutable"))
        never_started = not (old.get("status") or {}).get("startTime")
        if old_spec.get("template") != new_spec.get("template") and not (never_started and new_spec.get("suspend")):
            errs.append(invalid("spec.template", GoLiteral("core.PodTemplateSpec{...}"), "field is immutable"))
        return errs
    return validate_update


_PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")


def _validate_ingress_backend(backend: Obj, path: str) -> list[FieldError]:
    """validateIngressBackend: a Service (name, and a port name or number) or a resource, not both."""
    service, resource = backend.get("service"), backend.get("resource")
    if service and resource:
        return [invalid(path, "", "cannot set both resource and service backends")]
    if resource:
        return []
    if not service:
        return [invalid(path, "", "should either be a service or a resource")]
    errs: list[FieldError] = []
    if not service.get("name"):
        errs.append(required(f"{path}.service.name"))
    port = service.get("port") or {}
    if port.get("name") and port.get("number"):
        errs.append(invalid(f"{path}.service.port", "", "cannot set both port name & port number"))
    elif not port.get("name") and not port.get("number"):
        errs.append(required(f"{path}.service.port", "port name or number is required"))
    return errs


def _validate_ingress(obj: Obj) -> list[FieldError]:
    """ValidateIngressSpec's paths and backends (validateHTTPIngressPath, validateIngressBackend)."""
    spec = obj.get("spec") or {}
    errs: list[FieldError] = []
    if spec.get("defaultBackend"):
        errs.extend(_validate_ingress_backend(spec["defaultBackend"], "spec.defaultBackend"))
    for i, rule in enumerate(spec.get("rules") or []):
        for j, http_path in enumerate((rule.get("http") or {}).get("paths") or []):
            here = f"spec.rules[{i}].http.paths[{j}]"
            kind, value = http_path.get("pathType"), http_path.get("path") or ""
            if not kind:
                errs.append(required(f"{here}.pathType", "pathType must be specified"))
            elif kind not in _PATH_TYPES:
                errs.append(FieldError("FieldValueNotSupported", f"{here}.pathType", kind,
                                       "supported values: " + ", ".join(f'"{t}"' for t in _PATH_TYPES)))
            elif (kind != "ImplementationSpecific" or value) and not value.startswith("/"):
                errs.append(invalid(f"{here}.path", value, "must be an absolute path"))
            errs.extend(_validate_ingress_backend(http_path.get("backend") or {}, f"{here}.backend"))
    return errs


def _validate_hpa(obj: Obj) -> list[FieldError]:
    """validateHorizontalPodAutoscalerSpec's replica bounds."""
    spec = obj.get("spec") or {}
    low, high = spec.get("minReplicas"), spec.get("maxReplicas")
    errs: list[FieldError] = []
    if isinstance(low, int) and low < 1:
        errs.append(invalid("spec.minReplicas", low, "must be greater than or equal to 1"))
    if isinstance(high, int) and high < 1:
        errs.append(invalid("spec.maxReplicas", high, "must be greater than 0"))
    if isinstance(low, int) and isinstance(high, int) and high < low:
        errs.append(invalid("spec.maxReplicas", high, "must be greater than or equal to `minReplicas`"))
    return errs


def _strategies() -> dict[str, Strategy]:
    def res(group: str, kind: str) -> Resource:
        return by_kind(group, kind)

    sts, ds = res("apps", "StatefulSet"), res("apps", "DaemonSet")
    job, cron_jobs = res("batch", "Job"), res("batch", "CronJob")
    rc = res("", "ReplicationController")

    def job_validate(obj: Obj) -> list[FieldError]:
        return [*_schema_validator(job, _validate_job)(obj), *_validate_job_selector(obj)]

    plain = {
        ("", "ResourceQuota"): None,
        ("", "LimitRange"): d.default_limit_range,
        ("networking.k8s.io", "Ingress"): None,
        ("networking.k8s.io", "IngressClass"): d.default_ingress_class,
        ("networking.k8s.io", "NetworkPolicy"): d.default_network_policy,
        ("policy", "PodDisruptionBudget"): None,
        ("autoscaling", "HorizontalPodAutoscaler"): d.default_hpa,
        ("rbac.authorization.k8s.io", "Role"): None,
        ("rbac.authorization.k8s.io", "ClusterRole"): None,
        ("rbac.authorization.k8s.io", "RoleBinding"): d.default_role_binding,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"): d.default_role_binding,
        ("scheduling.k8s.io", "PriorityClass"): d.default_priority_class,
        ("node.k8s.io", "RuntimeClass"): None,
    }
    extra: dict[str, Validator] = {
        "roles": lambda o: _validate_rules(o.get("rules"), True),
        "clusterroles": lambda o: _validate_rules(o.get("rules"), False),
        "rolebindings": lambda o: _validate_binding(o, False),
        "clusterrolebindings": lambda o: _validate_binding(o, True),
        "poddisruptionbudgets": _validate_pdb,
        "ingresses": _validate_ingress,
        "horizontalpodautoscalers": _validate_hpa,
    }
    out: dict[str, Strategy] = {}
    for (group, kind), default in plain.items():
        r = res(group, kind)
        has_status = "status" in r.subresources
        validate = _schema_validator(r, extra.get(r.plural))
        out[r.plural] = Strategy(default=default, validate=validate,
                                 validate_update=_binding_update(validate) if r.plural.endswith("rolebindings")
                                 else None,
                                 has_status_subresource=has_status, tracks_generation=r.plural in GENERATION,
                                 prepare_create=_initial_status(r.plural) if has_status else None)
    for plural in ("roles", "clusterroles", "rolebindings", "clusterrolebindings"):  # ValidateRBACName
        out[plural] = dataclasses.replace(out[plural], name_kind="path-segment")
    sts_validate = _schema_validator(sts, _selected_template("statefulset"))
    ds_validate = _schema_validator(ds, _selected_template("daemonset"))
    out["statefulsets"] = Strategy(default=d.default_stateful_set, validate=sts_validate,
                                   validate_update=_stateful_set_update(sts_validate),
                                   has_status_subresource=True, prepare_create=_initial_status("statefulsets"),
                                   tracks_generation=True)
    out["daemonsets"] = Strategy(default=d.default_daemon_set, validate=ds_validate,
                                 validate_update=_daemon_set_update(ds_validate),
                                 has_status_subresource=True, prepare_create=_initial_status("daemonsets"),
                                 tracks_generation=True)
    out["jobs"] = Strategy(default=d.default_job, validate=job_validate, validate_update=_job_update(job_validate),
                           has_status_subresource=True,
                           prepare_create=_prepare_job, tracks_generation=True)
    cron_validate = _schema_validator(cron_jobs, _validate_cron_job)
    out["cronjobs"] = Strategy(default=d.default_cron_job, validate=cron_validate,
                               validate_update=_cron_job_update(cron_validate),
                               has_status_subresource=True, prepare_create=_initial_status("cronjobs"),
                               tracks_generation=True)
    out["replicationcontrollers"] = Strategy(
        default=d.default_replication_controller, validate=_schema_validator(rc, _validate_replication_controller),
        has_status_subresource=True, prepare_create=_initial_status("replicationcontrollers"),
        tracks_generation=True)
    return out


def table() -> dict[str, Strategy]:
    """The strategies of the kinds this module serves, keyed by resource (strategies.table merges them)."""
    return _strategies()
