"""EndpointSlice computation from a Service, its pods and the nodes (service-api.md section 4.1)."""

from __future__ import annotations

import itertools

from tests.controllers.objects import node, nodes_by_name, pod, service

from nanokube.controllers import endpointslice_reconciler as es

_rv = itertools.count(100)


def apply(plan: es.SlicePlan, existing: list[dict]) -> list[dict]:
    """What the cluster holds after the plan is written (names for creates, like generateName)."""
    by_name = {s["metadata"]["name"]: s for s in existing}
    for s in plan.delete:
        by_name.pop(s["metadata"]["name"])
    for s in plan.update:
        by_name[s["metadata"]["name"]] = s
    for i, s in enumerate(plan.create):
        s = {**s, "metadata": {**s["metadata"], "name": f"{s['metadata']['generateName']}{next(_rv)}{i}",
                               "resourceVersion": str(next(_rv))}}
        by_name[s["metadata"]["name"]] = s
    return list(by_name.values())


def endpoints_of(slices: list[dict]) -> dict[str, dict]:
    return {ep["targetRef"]["name"]: ep for s in slices for ep in s.get("endpoints") or []}


def test_ready_unready_and_terminating_conditions_and_metadata():
    svc = service(labels={"team": "a"})
    pods = [pod("a", "10.244.0.5"), pod("b", "10.244.0.6", ready=False), pod("c", "10.244.0.7", deleting=True)]
    plan = es.reconcile(svc, [], pods, nodes_by_name(node(zone="z1")))
    assert len(plan.create) == 1 and not plan.update and not plan.delete
    s = plan.create[0]
    eps = endpoints_of(plan.create)
    assert eps["a"]["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert eps["b"]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert eps["c"]["conditions"] == {"ready": False, "serving": True, "terminating": True}
    assert eps["a"]["targetRef"] == {"kind": "Pod", "namespace": "default", "name": "a", "uid": "pod-uid-a"}
    assert eps["a"]["nodeName"] == "node-1" and eps["a"]["zone"] == "z1" and "hostname" not in eps["a"]
    assert s["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert s["addressType"] == "IPv4"
    assert s["metadata"]["generateName"] == "web-"
    assert s["metadata"]["labels"] == {"team": "a", "kubernetes.io/service-name": "web",
                                       "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    assert s["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "web",
                                                 "uid": "svc-uid-web", "controller": True,
                                                 "blockOwnerDeletion": True}]


def test_publish_not_ready_addresses_makes_everything_ready_even_without_node():
    svc = service(publish=True)
    plan = es.reconcile(svc, [], [pod("b", "10.244.0.6", ready=False, node="gone")], nodes_by_name())
    ep = plan.create[0]["endpoints"][0]
    assert ep["conditions"] == {"ready": True, "serving": False, "terminating": False}
    assert not plan.node_missing


def test_pod_on_missing_node_is_skipped_and_retried():
    plan = es.reconcile(service(), [], [pod("a", "10.244.0.5", node="ghost")], nodes_by_name(node()))
    assert plan.node_missing
    assert plan.create[0]["endpoints"] is None  # only the placeholder


def test_excluded_pods_terminal_no_ip_other_labels():
    pods = [pod("done", "10.244.0.1", phase="Succeeded"), pod("noip", None), pod("other", "10.244.0.3",
                                                                                labels={"app": "db"})]
    svc = service()
    # the caller passes the pods the selector matched; the label filter lives in the index
    plan = es.reconcile(svc, [], pods[:2], nodes_by_name(node()))
    assert len(plan.create) == 1
    assert plan.create[0]["endpoints"] is None and plan.create[0]["ports"] is None


def test_named_target_port_resolves_per_pod_into_separate_slices():
    svc = service(ports=[{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web"}])
    pods = [pod("a", "10.244.0.5", ports=[{"name": "web", "containerPort": 8080, "protocol": "TCP"}]),
            pod("b", "10.244.0.6", ports=[{"name": "web", "containerPort": 9090, "protocol": "TCP"}]),
            pod("c", "10.244.0.7", ports=[{"name": "web", "containerPort": 9090, "protocol": "UDP"}])]
    plan = es.reconcile(svc, [], pods, nodes_by_name(node()))
    got = {s["ports"][0]["port"] if s["ports"] else None: {e["targetRef"]["name"] for e in s["endpoints"]}
           for s in plan.create}
    assert got == {8080: {"a"}, 9090: {"b"}, None: {"c"}}  # protocol mismatch: no ports for that pod


def test_hostname_only_when_subdomain_is_the_service():
    svc = service()
    pods = [pod("a", "10.244.0.5", hostname="db-0", subdomain="web"),
            pod("b", "10.244.0.6", hostname="db-1", subdomain="other")]
    eps = endpoints_of(es.reconcile(svc, [], pods, nodes_by_name(node())).create)
    assert eps["a"]["hostname"] == "db-0" and "hostname" not in eps["b"]


def test_headless_label():
    s = es.reconcile(service(cluster_ip="None"), [], [], nodes_by_name()).create[0]
    assert s["metadata"]["labels"]["service.kubernetes.io/headless"] == ""


def test_250_pods_make_3_slices_and_one_change_touches_one_slice():
    svc = service()
    pods = [pod(f"p{i}", f"10.244.{i // 200}.{i % 200 + 1}") for i in range(250)]
    get_node = nodes_by_name(node())
    slices = apply(es.reconcile(svc, [], pods, get_node), [])
    assert sorted(len(s["endpoints"]) for s in slices) == [50, 100, 100]
    # stable: nothing to do when nothing changed
    assert not es.reconcile(svc, slices, pods, get_node)
    pods[7] = pod("p7", pods[7]["status"]["podIP"], ready=False)
    plan = es.reconcile(svc, slices, pods, get_node)
    assert len(plan.update) == 1 and not plan.create and not plan.delete
    slices = apply(plan, slices)
    assert endpoints_of(slices)["p7"]["conditions"]["ready"] is False
    assert len(endpoints_of(slices)) == 250


def test_scale_down_to_zero_keeps_single_placeholder_and_is_stable():
    svc = service()
    get_node = nodes_by_name(node())
    slices = apply(es.reconcile(svc, [], [pod("a", "10.244.0.5")], get_node), [])
    plan = es.reconcile(svc, slices, [], get_node)
    # the emptied slice is reused as the placeholder rather than deleted and recreated
    assert len(plan.update) == 1 and not plan.create and not plan.delete
    slices = apply(plan, slices)
    assert slices[0]["endpoints"] is None and slices[0]["ports"] is None
    assert not es.reconcile(svc, slices, [], get_node)


def test_leftovers_go_to_an_unchanged_slice_that_fits():
    svc = service()
    get_node = nodes_by_name(node())
    pods = [pod(f"p{i}", f"10.244.0.{i + 1}") for i in range(150)]
    slices = apply(es.reconcile(svc, [], pods, get_node), [])
    pods.append(pod("new", "10.244.1.1"))
    plan = es.reconcile(svc, slices, pods, get_node)
    assert not plan.create and len(plan.update) == 1
    assert len(plan.update[0]["endpoints"]) == 51


def test_slices_not_owned_or_of_dropped_family_are_deleted():
    svc = service()
    foreign = {"metadata": {"name": "web-old", "namespace": "default", "ownerReferences": [
        {"kind": "Service", "uid": "someone-else"}], "labels": {}}, "addressType": "IPv4", "endpoints": []}
    v6 = {"metadata": {"name": "web-v6", "namespace": "default", "ownerReferences": [
        {"kind": "Service", "uid": "svc-uid-web"}]}, "addressType": "IPv6", "endpoints": []}
    plan = es.reconcile(svc, [foreign, v6], [pod("a", "10.244.0.5")], nodes_by_name(node()))
    assert {s["metadata"]["name"] for s in plan.delete} == {"web-v6", "web-old"} - {
        s["metadata"]["name"] for s in plan.update}
    assert len(plan.update) + len(plan.create) == 1
