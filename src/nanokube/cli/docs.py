"""docs/cli.md, generated from the argparse definitions: `python -m nanokube.cli.docs > docs/cli.md`.

tests/article/test_docs.py fails when docs/cli.md and the parser disagree.
"""

from __future__ import annotations

import argparse
import sys

from nanokube.api.served_resources import RESOURCES
from nanokube.cli.docs_security import SECURITY
from nanokube.cli.main import build_parser

HEADER = """# nanokube command line

Generated from the argparse definitions by `python -m nanokube.cli.docs > docs/cli.md`; a test keeps the two
in sync, so every flag below exists and every flag that exists is below. Exit codes: `server` and `agent` 0 on
a clean stop (SIGINT/SIGTERM), 1 when a component fails, 2 for a bad flag; `explain` 0 when the Service looks
reachable, 1 when it found a problem, 2 when it could not ask the API.
"""


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _default(action: argparse.Action) -> str:
    if isinstance(action, argparse._StoreTrueAction) or action.default in (None, argparse.SUPPRESS):
        return ""
    return f"`{action.default}`" if action.default != "" else ""


def _row(action: argparse.Action) -> str:
    if action.option_strings:
        names = ", ".join(f"`{o}`" for o in action.option_strings)
        if action.nargs != 0:
            names += f" {action.metavar or action.dest.upper()}"
    else:
        names = f"`{action.dest.upper()}`"
    choices = f" (one of: {', '.join(map(str, action.choices))})" if action.choices else ""
    repeat = " (repeatable)" if isinstance(action, argparse._AppendAction) and "repeatable" not in (action.help or "") \
        else ""
    help_text = (action.help or "").replace("|", "\\|")
    return f"| {names} | {help_text}{choices}{repeat} | {_default(action)} |"


def cli_reference() -> str:
    parser = build_parser()
    out = [HEADER]
    for name, sub in _subparsers(parser).items():
        usage = " ".join(sub.format_usage().split())
        out.append(f"## `nanokube {name}`\n")
        out.append(f"{sub.description or _help_of(parser, name)}\n")
        out.append(f"```\n{usage.removeprefix('usage: ')}\n```\n")
        out.append("| argument | meaning | default |\n|---|---|---|")
        out.extend(_row(a) for a in sub._actions if not isinstance(a, argparse._HelpAction))
        out.append("")
    out.append(served_kinds())
    out.append("Tokens, ServiceAccounts, RBAC, `kubectl auth`, eviction and server-side apply: "
               "[access.md](access.md).\n")
    return "\n".join(out) + SECURITY


# What acts on each served kind; a kind not listed is stored, validated, defaulted and listed only.
ACTED_ON: dict[tuple[str, str], str] = {
    ("", "pods"): "scheduled by the scheduler, run by the node agent",
    ("", "services"): "ClusterIP/NodePort allocation, proxy, DNS, LoadBalancer addresses",
    ("", "endpoints"): "written by the endpoints controller (mirrored when hand-written)",
    ("", "secrets"): "mounted and injected into pods by the node agent",
    ("", "configmaps"): "mounted and injected into pods by the node agent",
    ("", "persistentvolumeclaims"): "provisioned by the local-path provisioner",
    ("", "persistentvolumes"): "provisioned and reclaimed by the local-path provisioner",
    ("", "nodes"): "registered by agents, node lifecycle controller",
    ("", "namespaces"): "namespace controller empties deleted namespaces",
    ("apps", "deployments"): "deployment controller",
    ("apps", "replicasets"): "replicaset controller",
    ("apps", "statefulsets"): "statefulset controller: OrderedReady/Parallel, stable names and hostnames, one PVC per "
                              "claim template and ordinal (retention policy), RollingUpdate with partition, OnDelete",
    ("apps", "daemonsets"): "daemonset controller: one pod per eligible node (nodeSelector, affinity, taints), "
                            "RollingUpdate (maxUnavailable/maxSurge), OnDelete",
    ("apps", "controllerrevisions"): "written by the StatefulSet and DaemonSet controllers (`kubectl rollout "
                                     "history/undo`)",
    ("batch", "jobs"): "job controller: completions/parallelism, Indexed, backoffLimit, activeDeadlineSeconds, suspend, "
                       "ttlSecondsAfterFinished (not yet: podFailurePolicy, successPolicy, backoffLimitPerIndex)",
    ("batch", "cronjobs"): "cronjob controller: schedules with time zones, concurrencyPolicy, suspend, "
                           "startingDeadlineSeconds, history limits",
    ("", "replicationcontrollers"): "replicationcontroller controller (the ReplicaSet controller, equality selector)",
    ("", "resourcequotas"): "API server admission of pods and Services (counts, services.nodeports, "
                            "services.loadbalancers, cpu/memory); resourcequota controller writes status",
    ("", "limitranges"): "API server admission of pods: Container defaults, min/max",
    ("discovery.k8s.io", "endpointslices"): "written by the EndpointSlice controller; read by proxy and DNS",
    ("coordination.k8s.io", "leases"): "node heartbeats",
    ("", "events"): "written by the controllers and agents",
    ("events.k8s.io", "events"): "written by the controllers and agents",
    ("storage.k8s.io", "storageclasses"): "the `local-path` class",
    ("apiextensions.k8s.io", "customresourcedefinitions"): "the API server serves the custom resources they define",
    ("authentication.k8s.io", "selfsubjectreviews"): "answered by the API server (`kubectl auth whoami`)",
    ("authorization.k8s.io", "selfsubjectaccessreviews"): "answered by the API server (`kubectl auth can-i`)",
    ("authorization.k8s.io", "selfsubjectrulesreviews"): "answered by the API server (`kubectl auth can-i --list`)",
    ("authorization.k8s.io", "subjectaccessreviews"): "answered by the API server (RBAC)",
    ("authorization.k8s.io", "localsubjectaccessreviews"): "answered by the API server (RBAC)",
    ("", "serviceaccounts"): "serviceaccount controller (a `default` one per namespace), TokenRequest (`kubectl create "
                             "token`), token volumes in pods",
    ("networking.k8s.io", "ingresses"): "the ingress component routes it ([ingress.md](ingress.md))",
    ("networking.k8s.io", "ingressclasses"): "read by the ingress component (which class it serves)",
    ("policy", "poddisruptionbudgets"): "disruption controller writes status; the Eviction subresource honours it "
                                        "(`kubectl drain`)",
    ("rbac.authorization.k8s.io", "roles"): "RBAC authorization of every request but the admin token's",
    ("rbac.authorization.k8s.io", "rolebindings"): "RBAC authorization of every request but the admin token's",
    ("rbac.authorization.k8s.io", "clusterroles"): "RBAC authorization (a subset of the default roles is "
                                                   "bootstrapped)",
    ("rbac.authorization.k8s.io", "clusterrolebindings"): "RBAC authorization (the default bindings are bootstrapped)",
    ("apiregistration.k8s.io", "apiservices"): "stored only: no aggregation layer (requests for its group are not "
                                               "proxied anywhere)",
}


def served_kinds() -> str:
    out = ["## API kinds served\n",
           "Every kind below is served with discovery, OpenAPI, validation, defaulting and `kubectl get` columns. "
           "Kinds without an entry under \"acted on by\" are stored, validated and listed only: nothing in nanokube "
           "acts on them yet (a NetworkPolicy filters nothing, an HPA scales nothing).\n",
           "| kind | API version | acted on by |\n|---|---|---|"]
    for r in RESOURCES:
        out.append(f"| {r.kind} | {r.group_version} | {ACTED_ON.get((r.group, r.plural), 'stored only')} |")
    out.append("")
    return "\n".join(out)


def _help_of(parser: argparse.ArgumentParser, name: str) -> str:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if choice.dest == name:
                    text = choice.help or ""
                    return text[:1].upper() + text[1:] + "."
    return ""


if __name__ == "__main__":
    sys.stdout.write(cli_reference())
