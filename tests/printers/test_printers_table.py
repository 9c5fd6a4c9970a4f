"""The Table envelope: column definitions per resource, row objects, list metadata, the default table."""

from __future__ import annotations

import json

import pytest

from nanokube.api.errors import ApiError
from nanokube.api.served_resources import RESOURCES
from nanokube.apiserver.printing import PRINTERS, table_api_version, to_table

from .objects import NOW, meta, service, tcp

NAME_DOC_START = "Name must be unique within a namespace."
AGE_DOC_START = "CreationTimestamp is a timestamp representing the server time"

# (name, type, format, priority) of every column, in order, as printers.go declares them.
S, N = "string", "integer"
EXPECTED_COLUMNS: dict[tuple[str, str], list[tuple[str, str, str, int]]] = {
    ("", "namespaces"): [("Name", S, "name", 0), ("Status", S, "", 0), ("Age", S, "", 0)],
    ("", "pods"): [("Name", S, "name", 0), ("Ready", S, "", 0), ("Status", S, "", 0), ("Restarts", S, "", 0),
                   ("Age", S, "", 0), ("IP", S, "", 1), ("Node", S, "", 1), ("Nominated Node", S, "", 1),
                   ("Readiness Gates", S, "", 1)],
    ("", "services"): [("Name", S, "name", 0), ("Type", S, "", 0), ("Cluster-IP", S, "", 0),
                       ("External-IP", S, "", 0), ("Port(s)", S, "", 0), ("Age", S, "", 0), ("Selector", S, "", 1)],
    ("", "endpoints"): [("Name", S, "name", 0), ("Endpoints", S, "", 0), ("Age", S, "", 0)],
    ("", "secrets"): [("Name", S, "name", 0), ("Type", S, "", 0), ("Data", S, "", 0), ("Age", S, "", 0)],
    ("", "configmaps"): [("Name", S, "name", 0), ("Data", S, "", 0), ("Age", S, "", 0)],
    ("", "persistentvolumeclaims"): [("Name", S, "name", 0), ("Status", S, "", 0), ("Volume", S, "", 0),
                                     ("Capacity", S, "", 0), ("Access Modes", S, "", 0), ("StorageClass", S, "", 0),
                                     ("VolumeAttributesClass", S, "", 0), ("Age", S, "", 0),
                                     ("VolumeMode", S, "", 1)],
    ("", "persistentvolumes"): [("Name", S, "name", 0), ("Capacity", S, "", 0), ("Access Modes", S, "", 0),
                                ("Reclaim Policy", S, "", 0), ("Status", S, "", 0), ("Claim", S, "", 0),
                                ("StorageClass", S, "", 0), ("VolumeAttributesClass", S, "", 0),
                                ("Reason", S, "", 0), ("Age", S, "", 0), ("VolumeMode", S, "", 1)],
    ("", "nodes"): [("Name", S, "name", 0), ("Status", S, "", 0), ("Roles", S, "", 0), ("Age", S, "", 0),
                    ("Version", S, "", 0), ("Internal-IP", S, "", 1), ("External-IP", S, "", 1),
                    ("OS-Image", S, "", 1), ("Kernel-Version", S, "", 1), ("Container-Runtime", S, "", 1)],
    ("", "events"): [("Last Seen", S, "", 0), ("Type", S, "", 0), ("Reason", S, "", 0), ("Object", S, "", 0),
                     ("Subobject", S, "", 1), ("Source", S, "", 1), ("Message", S, "", 0),
                     ("First Seen", S, "", 1), ("Count", S, "", 1), ("Name", S, "name", 1)],
    ("", "serviceaccounts"): [("Name", S, "name", 0), ("Secrets", S, "", 0), ("Age", S, "", 0)],
    ("apps", "deployments"): [("Name", S, "name", 0), ("Ready", S, "", 0), ("Up-to-date", S, "", 0),
                              ("Available", S, "", 0), ("Age", S, "", 0), ("Containers", S, "", 1),
                              ("Images", S, "", 1), ("Selector", S, "", 1)],
    ("apps", "replicasets"): [("Name", S, "name", 0), ("Desired", N, "", 0), ("Current", N, "", 0),
                              ("Ready", N, "", 0), ("Age", S, "", 0), ("Containers", S, "", 1),
                              ("Images", S, "", 1), ("Selector", S, "", 1)],
    ("apps", "controllerrevisions"): [("Name", S, "name", 0), ("Controller", S, "", 0), ("Revision", S, "", 0),
                                      ("Age", S, "", 0)],
    ("discovery.k8s.io", "endpointslices"): [("Name", S, "name", 0), ("AddressType", S, "", 0), ("Ports", S, "", 0),
                                             ("Endpoints", S, "", 0), ("Age", S, "", 0)],
    ("coordination.k8s.io", "leases"): [("Name", S, "name", 0), ("Holder", S, "", 0), ("Age", S, "", 0)],
    ("storage.k8s.io", "storageclasses"): [("Name", S, "name", 0), ("Provisioner", S, "", 0),
                                           ("ReclaimPolicy", S, "", 0), ("VolumeBindingMode", S, "", 0),
                                           ("AllowVolumeExpansion", S, "", 0), ("Age", S, "", 0)],
}
EXPECTED_COLUMNS[("events.k8s.io", "events")] = EXPECTED_COLUMNS[("", "events")]
B = "boolean"
WIDE_TEMPLATE = [("Containers", S, "", 1), ("Images", S, "", 1), ("Selector", S, "", 1)]
EXPECTED_COLUMNS.update({
    ("", "replicationcontrollers"): EXPECTED_COLUMNS[("apps", "replicasets")],
    ("", "resourcequotas"): [("Name", S, "name", 0), ("Age", S, "", 0), ("Request", S, "", 0), ("Limit", S, "", 0)],
    ("apps", "statefulsets"): [("Name", S, "name", 0), ("Ready", S, "", 0), ("Age", S, "", 0),
                               ("Containers", S, "", 1), ("Images", S, "", 1)],
    ("apps", "daemonsets"): [("Name", S, "name", 0), ("Desired", N, "", 0), ("Current", N, "", 0), ("Ready", N, "", 0),
                             ("Up-to-date", N, "", 0), ("Available", N, "", 0), ("Node Selector", S, "", 0),
                             ("Age", S, "", 0), *WIDE_TEMPLATE],
    ("batch", "jobs"): [("Name", S, "name", 0), ("Status", S, "", 0), ("Completions", S, "", 0),
                        ("Duration", S, "", 0), ("Age", S, "", 0), *WIDE_TEMPLATE],
    ("batch", "cronjobs"): [("Name", S, "name", 0), ("Schedule", S, "", 0), ("Timezone", S, "", 0),
                            ("Suspend", B, "", 0), ("Active", N, "", 0), ("Last Schedule", S, "", 0),
                            ("Age", S, "", 0), *WIDE_TEMPLATE],
    ("autoscaling", "horizontalpodautoscalers"): [("Name", S, "name", 0), ("Reference", S, "", 0),
                                                  ("Targets", S, "", 0), ("MinPods", S, "", 0), ("MaxPods", S, "", 0),
                                                  ("Replicas", S, "", 0), ("Age", S, "", 0)],
    ("networking.k8s.io", "ingresses"): [("Name", S, "name", 0), ("Class", S, "", 0), ("Hosts", S, "", 0),
                                         ("Address", S, "", 0), ("Ports", S, "", 0), ("Age", S, "", 0)],
    ("networking.k8s.io", "ingressclasses"): [("Name", S, "name", 0), ("Controller", S, "", 0),
                                              ("Parameters", S, "", 0), ("Age", S, "", 0)],
    ("networking.k8s.io", "networkpolicies"): [("Name", S, "name", 0), ("Pod-Selector", S, "", 0), ("Age", S, "", 0)],
    ("policy", "poddisruptionbudgets"): [("Name", S, "name", 0), ("Min Available", S, "", 0),
                                         ("Max Unavailable", S, "", 0), ("Allowed Disruptions", N, "", 0),
                                         ("Age", S, "", 0)],
    ("scheduling.k8s.io", "priorityclasses"): [("Name", S, "name", 0), ("Value", N, "", 0), ("Global-Default", B, "", 0),
                                               ("Age", S, "", 0), ("PreemptionPolicy", S, "", 0)],
    ("node.k8s.io", "runtimeclasses"): [("Name", S, "name", 0), ("Handler", S, "", 0), ("Age", S, "", 0)],
    ("apiregistration.k8s.io", "apiservices"): [("Name", S, "name", 0), ("Service", S, "", 0),
                                                ("Available", S, "", 0), ("Age", S, "", 0)],
})
for _binding in ("rolebindings", "clusterrolebindings"):
    EXPECTED_COLUMNS[("rbac.authorization.k8s.io", _binding)] = [
        ("Name", S, "name", 0), ("Role", S, "", 0), ("Age", S, "", 0), ("Users", S, "", 1), ("Groups", S, "", 1),
        ("ServiceAccounts", S, "", 1)]
# Kinds Kubernetes has no printer for: the default Name / Created At table.
DEFAULT_TABLE = {("rbac.authorization.k8s.io", "roles"), ("rbac.authorization.k8s.io", "clusterroles"),
                 ("", "limitranges"), ("apiextensions.k8s.io", "customresourcedefinitions")}


def test_every_scheme_resource_has_a_printer() -> None:
    listable = {(r.group, r.plural) for r in RESOURCES if "list" in r.verbs}  # not the create-only reviews
    assert listable - DEFAULT_TABLE == set(PRINTERS) == set(EXPECTED_COLUMNS)


@pytest.mark.parametrize(("group", "plural"), sorted(EXPECTED_COLUMNS))
def test_column_definitions(group: str, plural: str) -> None:
    columns = to_table(plural, group, [], now=NOW)["columnDefinitions"]
    assert [(c["name"], c["type"], c["format"], c["priority"]) for c in columns] == EXPECTED_COLUMNS[(group, plural)]
    for column in columns:
        assert list(column) == ["name", "type", "format", "description", "priority"]
        # RuntimeClass' Handler column reads ObjectMeta's (absent) "handler" doc in printers.go: empty there too.
        assert column["description"] or (plural, column["name"]) == ("runtimeclasses", "Handler"), column["name"]
        if column["name"] == "Name":
            assert column["description"].startswith(NAME_DOC_START)
        if column["name"] == "Age":
            assert column["description"].startswith(AGE_DOC_START)


def test_descriptions_are_the_api_docs() -> None:
    columns = {c["name"]: c["description"] for c in to_table("services", "", [], now=NOW)["columnDefinitions"]}
    assert columns["Port(s)"].startswith("The list of ports that are exposed by this service. More info: ")
    assert columns["Selector"].startswith("Route service traffic to pods with label keys and values matching")
    pods = {c["name"]: c["description"] for c in to_table("pods", "", [], now=NOW)["columnDefinitions"]}
    assert pods["Ready"] == "The aggregate readiness state of this pod for accepting traffic."
    assert pods["IP"].startswith("podIP address allocated to the pod.")


def test_list_envelope_with_partial_object_metadata() -> None:
    svc = service("kubernetes", cluster_ip="10.96.0.1", ports=[tcp(443)])
    svc["metadata"]["labels"] = {"component": "apiserver"}
    table = to_table("services", "", [svc], now=NOW,
                     list_meta={"resourceVersion": "5123", "continue": "", "remainingItemCount": None})
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "5123"}
    row = table["rows"][0]
    assert row["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": svc["metadata"]}
    assert "conditions" not in row
    json.dumps(table)  # plain JSON all the way down


def test_include_object_variants_and_v1beta1() -> None:
    svc = service("a", ports=[tcp(80)])
    full = to_table("services", "", [svc], now=NOW, include_object="Object")
    assert full["rows"][0]["object"] is svc
    none = to_table("services", "", [svc], now=NOW, include_object="None")
    assert none["rows"][0]["object"] is None
    beta = to_table("services", "", [svc], now=NOW, include_object="", api_version="meta.k8s.io/v1beta1")
    assert beta["apiVersion"] == "meta.k8s.io/v1beta1"
    assert beta["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"


def test_unknown_include_object_is_a_bad_request() -> None:
    with pytest.raises(ApiError) as err:
        to_table("services", "", [], now=NOW, include_object="Everything")
    status = err.value.status()
    assert status["code"] == 400
    assert status["message"] == 'unrecognized includeObject value: "Everything"'


def test_no_headers_for_watch_events_after_the_first() -> None:
    table = to_table("pods", "", [], now=NOW, no_headers=True)
    assert table["columnDefinitions"] is None
    assert table["rows"] == []


def test_default_table_for_unknown_resources() -> None:
    obj = {"apiVersion": "example.com/v1", "kind": "Widget",
           "metadata": meta("w1", creationTimestamp="2024-04-30T10:11:12Z")}
    table = to_table("widgets", "example.com", [obj], now=NOW, list_meta={"resourceVersion": "9"})
    assert [(c["name"], c["type"], c["format"], c["priority"]) for c in table["columnDefinitions"]] == [
        ("Name", "string", "name", 0), ("Created At", "date", "", 0)]
    assert table["rows"][0]["cells"] == ["w1", "2024-04-30T10:11:12Z"]
    assert to_table("widgets", "example.com", [], now=NOW)["rows"] is None


def test_secret_values_never_reach_the_table() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta("s"),
              "data": {"password": "c3VwZXJzZWNyZXQ="}, "stringData": {"token": "plain-secret"}}
    text = json.dumps(to_table("secrets", "", [secret], now=NOW))
    assert "c3VwZXJzZWNyZXQ=" not in text and "plain-secret" not in text
    assert to_table("secrets", "", [secret], now=NOW)["rows"][0]["cells"][2] == 2


KUBECTL_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
                  "application/json")


@pytest.mark.parametrize(
    ("accept", "want"),
    [
        (KUBECTL_ACCEPT, "meta.k8s.io/v1"),
        ("application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json", "meta.k8s.io/v1beta1"),
        ("application/json;as=Table;v=v1alpha1;g=meta.k8s.io,application/json", None),
        ("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1;"
         "g=meta.k8s.io", "meta.k8s.io/v1"),
        ("application/json,application/json;as=Table;v=v1;g=meta.k8s.io", None),
        ("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io", None),
        ("*/*", None),
        ("", None),
        (None, None),
    ],
)
def test_table_api_version_from_accept(accept: str | None, want: str | None) -> None:
    assert table_api_version(accept) == want
