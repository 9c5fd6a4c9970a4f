"""Cells of every other resource in the scheme, table-driven: a realistic object and its exact row."""

from __future__ import annotations

import pytest

from nanokube.apiserver.printing import to_table

from .objects import NOW, ago, ago_micro, meta, service, tcp

# (plural, group, object, expected cells) per case.
CASES: dict[str, tuple[str, str, dict, list]] = {}


def case(name: str, plural: str, group: str, obj: dict, cells: list) -> None:
    CASES[name] = (plural, group, obj, cells)


# -- services -------------------------------------------------------------------------------------------
case("svc kubernetes", "services", "", service("kubernetes", cluster_ip="10.96.0.1", ports=[tcp(443)],
                                                  age={"hours": 5, "minutes": 23, "seconds": 12}),
     ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP", "5h23m", "<none>"])
case("svc selector sorted", "services", "", service("mariadb-service", ports=[tcp(3306)], age={"seconds": 113},
                                                    selector={"tier": "db", "app": "mariadb", "app-x": "1"}),
     ["mariadb-service", "ClusterIP", "10.96.0.10", "<none>", "3306/TCP", "113s", "app-x=1,app=mariadb,tier=db"])
case("svc nodeport", "services", "", service("svc-nodeport-mariadb", "NodePort", ports=[tcp(3306, 31111)],
                                             selector={"app": "mariadb"}, age={"seconds": 100}),
     ["svc-nodeport-mariadb", "NodePort", "10.96.0.10", "<none>", "3306:31111/TCP", "100s", "app=mariadb"])
case("svc external ips", "services", "", service("ext", ports=[tcp(80), tcp(53, protocol="UDP")],
                                                 externalIPs=["192.0.2.10", "192.0.2.9"]),
     ["ext", "ClusterIP", "10.96.0.10", "192.0.2.10,192.0.2.9", "80/TCP,53/UDP", "60m", "<none>"])
case("svc lb pending", "services", "", service("lb", "LoadBalancer", ports=[tcp(3306, 30942)], age={"seconds": 55}),
     ["lb", "LoadBalancer", "10.96.0.10", "<pending>", "3306:30942/TCP", "55s", "<none>"])
case("svc lb ingress sorted and deduped, then externalIPs", "services", "",
     service("lb2", "LoadBalancer", ports=[tcp(80, 30080)], externalIPs=["198.51.100.7"],
             _lb={"ingress": [{"ip": "203.0.113.9"}, {"hostname": "a.example.com"}, {"ip": "203.0.113.10"},
                              {"ip": "203.0.113.9"}]}),
     ["lb2", "LoadBalancer", "10.96.0.10", "203.0.113.10,203.0.113.9,a.example.com,198.51.100.7", "80:30080/TCP",
      "60m", "<none>"])
case("svc external name", "services", "", service("training-aurora-svc", "ExternalName", cluster_ip=None,
                                                  externalName="db.example.com", age={"seconds": 97}),
     ["training-aurora-svc", "ExternalName", "<none>", "db.example.com", "<none>", "97s", "<none>"])
case("svc headless", "services", "", service("db-headless", cluster_ip="None", ports=[tcp(3306)],
                                             selector={"app": "db"}),
     ["db-headless", "ClusterIP", "None", "<none>", "3306/TCP", "60m", "app=db"])
case("svc dual-stack shows the first cluster IP", "services", "",
     {**service("ds", ports=[tcp(80)]), "spec": {**service("ds", ports=[tcp(80)])["spec"],
                                                 "clusterIPs": ["10.96.0.20", "fd00::20"]}},
     ["ds", "ClusterIP", "10.96.0.20", "<none>", "80/TCP", "60m", "<none>"])

# -- endpoints ------------------------------------------------------------------------------------------


def endpoints(name: str, subsets: list) -> dict:
    obj = {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta(name, age={"days": 5, "hours": 15})}
    if subsets:
        obj["subsets"] = subsets
    return obj


def addrs(*ips: str) -> list:
    return [{"ip": ip} for ip in ips]


case("ep none", "endpoints", "", endpoints("empty", []), ["empty", "<none>", "5d15h"])
case("ep three", "endpoints", "", endpoints("web", [{"addresses": addrs("10.244.1.5", "10.244.1.6", "10.244.2.3"),
                                                     "ports": [{"port": 80, "protocol": "TCP"}]}]),
     ["web", "10.244.1.5:80,10.244.1.6:80,10.244.2.3:80", "5d15h"])
case("ep more", "endpoints", "", endpoints("web", [
    {"addresses": addrs("10.244.1.5", "10.244.1.6", "10.244.2.3", "10.244.2.4", "10.244.2.5"),
     "ports": [{"port": 80, "protocol": "TCP"}]}]),
    ["web", "10.244.1.5:80,10.244.1.6:80,10.244.2.3:80 + 2 more...", "5d15h"])
case("ep ports x addresses", "endpoints", "", endpoints("multi", [
    {"addresses": addrs("10.0.0.1", "10.0.0.2"), "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}]),
    ["multi", "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...", "5d15h"])
case("ep not ready only", "endpoints", "", endpoints("nr", [{"notReadyAddresses": addrs("10.0.0.1"),
                                                             "ports": [{"port": 80}]}]),
     ["nr", "", "5d15h"])
case("ep headless without ports", "endpoints", "", endpoints("hl", [{"addresses": addrs("10.0.0.1", "10.0.0.2")}]),
     ["hl", "10.0.0.1,10.0.0.2", "5d15h"])
case("ep ipv6 bracketed", "endpoints", "", endpoints("v6", [{"addresses": addrs("fd00::5"), "ports": [{"port": 8080}]}]),
     ["v6", "[fd00::5]:8080", "5d15h"])

# -- endpointslices -------------------------------------------------------------------------------------


def eps(name: str, ports: list | None, endpoints_: list | None, address_type: str = "IPv4") -> dict:
    obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": address_type,
           "metadata": meta(name, age={"minutes": 7})}
    if ports is not None:
        obj["ports"] = ports
    if endpoints_ is not None:
        obj["endpoints"] = endpoints_
    return obj


case("eps basic", "endpointslices", "discovery.k8s.io",
     eps("web-abc12", [{"name": "http", "port": 80, "protocol": "TCP"}],
         [{"addresses": ["10.244.1.5"], "conditions": {"ready": True}},
          {"addresses": ["10.244.1.6"], "conditions": {"ready": False}}]),
     ["web-abc12", "IPv4", "80", "10.244.1.5,10.244.1.6", "7m"])
case("eps more", "endpointslices", "discovery.k8s.io",
     eps("big", [{"port": 80}, {"port": 443}, {"name": "metrics"}, {}],
         [{"addresses": [f"10.0.0.{i}"]} for i in range(1, 6)]),
     ["big", "IPv4", "80,443,metrics + 1 more...", "10.0.0.1,10.0.0.2,10.0.0.3 + 2 more...", "7m"])
case("eps unset", "endpointslices", "discovery.k8s.io", eps("none", None, None, "IPv6"),
     ["none", "IPv6", "<unset>", "<unset>", "7m"])
case("eps port without number or name", "endpointslices", "discovery.k8s.io", eps("star", [{}], []),
     ["star", "IPv4", "*", "<unset>", "7m"])

# -- nodes ----------------------------------------------------------------------------------------------


def node(name: str, ready: str | None = "True", *, labels: dict | None = None, unschedulable: bool = False,
         addresses: list | None = None, info: dict | None = None) -> dict:
    conditions = [{"type": "MemoryPressure", "status": "False"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready})
    obj = {"apiVersion": "v1", "kind": "Node", "metadata": meta(name, None, {"days": 5, "hours": 15}),
           "spec": {"unschedulable": True} if unschedulable else {},
           "status": {"conditions": conditions, "addresses": addresses or [],
                      "nodeInfo": info if info is not None else {"kubeletVersion": "v1.27.8-gke.1067004"}}}
    if labels:
        obj["metadata"]["labels"] = labels
    return obj


FULL_INFO = {"kubeletVersion": "v1.32.0-nanokube", "osImage": "Debian GNU/Linux 12 (bookworm)",
             "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": "nanokube://0.1.0"}
case("node ready", "nodes", "", node("gke-k8s-training-clu-k8s-training-wor-f25d17e7-gvs0"),
     ["gke-k8s-training-clu-k8s-training-wor-f25d17e7-gvs0", "Ready", "<none>", "5d15h", "v1.27.8-gke.1067004",
      "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"])
case("node wide and roles", "nodes", "", node(
    "cp", labels={"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": "",
                  "node-role.kubernetes.io/": "x", "kubernetes.io/role": "etcd", "kubernetes.io/hostname": "cp"},
    addresses=[{"type": "Hostname", "address": "cp"}, {"type": "InternalIP", "address": "192.168.49.2"},
               {"type": "InternalIP", "address": "192.168.49.3"}, {"type": "ExternalIP", "address": "203.0.113.4"}],
    info=FULL_INFO),
    ["cp", "Ready", "control-plane,etcd,master", "5d15h", "v1.32.0-nanokube", "192.168.49.2", "203.0.113.4",
     "Debian GNU/Linux 12 (bookworm)", "6.1.0-18-amd64", "nanokube://0.1.0"])
case("node not ready, cordoned", "nodes", "", node("n2", "False", unschedulable=True),
     ["n2", "NotReady,SchedulingDisabled", "<none>", "5d15h", "v1.27.8-gke.1067004", "<none>", "<none>",
      "<unknown>", "<unknown>", "<unknown>"])
case("node without Ready condition", "nodes", "", node("n3", None),
     ["n3", "Unknown", "<none>", "5d15h", "v1.27.8-gke.1067004", "<none>", "<none>", "<unknown>", "<unknown>",
      "<unknown>"])

# -- namespaces, secrets, configmaps, serviceaccounts, leases ------------------------------------------------
case("namespace", "namespaces", "", {"apiVersion": "v1", "kind": "Namespace", "metadata": meta("default", None, {"days": 30}),
                                     "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}},
     ["default", "Active", "30d"])
case("namespace terminating", "namespaces", "",
     {"apiVersion": "v1", "kind": "Namespace", "metadata": meta("old", None, {"minutes": 3, "seconds": 5}),
      "status": {"phase": "Terminating"}},
     ["old", "Terminating", "3m5s"])
case("secret", "secrets", "", {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta("db-pass"),
                               "data": {"username": "cm9vdA==", "password": "czNjcjN0"}},
     ["db-pass", "Opaque", 2, "60m"])
case("secret tls", "secrets", "", {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                                   "metadata": meta("tls", age={"days": 400}), "data": {"tls.crt": "", "tls.key": ""}},
     ["tls", "kubernetes.io/tls", 2, "400d"])
case("secret empty", "secrets", "", {"apiVersion": "v1", "kind": "Secret", "metadata": meta("e", age={"seconds": 5})},
     ["e", "Opaque", 0, "5s"])
case("configmap", "configmaps", "", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("kube-root-ca.crt"),
                                     "data": {"ca.crt": "..."}, "binaryData": {"blob": "AAEC"}},
     ["kube-root-ca.crt", 2, "60m"])
case("serviceaccount", "serviceaccounts", "", {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta("default")},
     ["default", 0, "60m"])
case("serviceaccount with secrets", "serviceaccounts", "",
     {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta("builder"), "secrets": [{"name": "builder-token"}]},
     ["builder", 1, "60m"])
case("lease", "leases", "coordination.k8s.io",
     {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta("node-1", "kube-node-lease"),
      "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}},
     ["node-1", "node-1", "60m"])
case("lease without holder", "leases", "coordination.k8s.io",
     {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta("free"), "spec": {}},
     ["free", "", "60m"])

# -- deployments, replicasets, controllerrevisions ------------------------------------------------------------
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
    {"name": "nginx", "image": "nginx:1.25"}, {"name": "sidecar", "image": "busybox:1.36"}]}}
case("deployment", "deployments", "apps",
     {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web", age={"hours": 12}),
      "spec": {"replicas": 3, "template": TEMPLATE, "selector": {
          "matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]},
                                                              {"key": "canary", "operator": "DoesNotExist"}]}},
      "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}},
     ["web", "2/3", 3, 2, "12h", "nginx,sidecar", "nginx:1.25,busybox:1.36", "app=web,!canary,tier in (a,b)"])
case("deployment fresh", "deployments", "apps",
     {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("mariadb-deployment", age={"seconds": 3}),
      "spec": {"replicas": 1, "template": TEMPLATE, "selector": {"matchLabels": {"app": "mariadb"}}}, "status": {}},
     ["mariadb-deployment", "0/1", 0, 0, "3s", "nginx,sidecar", "nginx:1.25,busybox:1.36", "app=mariadb"])
case("replicaset", "replicasets", "apps",
     {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta("web-68b7fcd4cd", age={"hours": 12}),
      "spec": {"replicas": 3, "template": TEMPLATE,
               "selector": {"matchLabels": {"app": "web", "pod-template-hash": "68b7fcd4cd"}}},
      "status": {"replicas": 3, "readyReplicas": 1}},
     ["web-68b7fcd4cd", 3, 3, 1, "12h", "nginx,sidecar", "nginx:1.25,busybox:1.36", "app=web,pod-template-hash=68b7fcd4cd"])
case("replicaset scaled to zero, empty selector", "replicasets", "apps",
     {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta("old"),
      "spec": {"replicas": 0, "template": {"spec": {"containers": []}}, "selector": {}}, "status": {"replicas": 0}},
     ["old", 0, 0, 0, "60m", "", "", "<none>"])
case("controllerrevision", "controllerrevisions", "apps",
     {"apiVersion": "apps/v1", "kind": "ControllerRevision", "revision": 2, "data": {},
      "metadata": meta("web-5d9c7b8f6", ownerReferences=[
          {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "u1", "controller": True}])},
     ["web-5d9c7b8f6", "statefulset.apps/web", 2, "60m"])
case("controllerrevision core owner", "controllerrevisions", "apps",
     {"apiVersion": "apps/v1", "kind": "ControllerRevision", "revision": 1,
      "metadata": meta("r1", ownerReferences=[{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u",
                                               "controller": True}])},
     ["r1", "pod/p", 1, "60m"])
case("controllerrevision orphan", "controllerrevisions", "apps",
     {"apiVersion": "apps/v1", "kind": "ControllerRevision", "revision": 7,
      "metadata": meta("r2", ownerReferences=[{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "d", "uid": "u"}])},
     ["r2", "<none>", 7, "60m"])

# -- storage --------------------------------------------------------------------------------------------------
case("pvc bound", "persistentvolumeclaims", "",
     {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta("data", age={"days": 5}),
      "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
               "storageClassName": "standard", "volumeName": "pvc-3f1c", "volumeMode": "Filesystem"},
      "status": {"phase": "Bound", "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
                 "capacity": {"storage": "1024Mi"}}},
     ["data", "Bound", "pvc-3f1c", "1Gi", "RWO,RWX", "standard", "<unset>", "5d", "Filesystem"])
case("pvc pending", "persistentvolumeclaims", "",
     {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta("wait", age={"seconds": 30}),
      "spec": {"accessModes": ["ReadWriteOncePod"], "resources": {"requests": {"storage": "5Gi"}},
               "volumeAttributesClassName": "gold"},
      "status": {"phase": "Pending"}},
     ["wait", "Pending", "", "", "", "", "gold", "30s", "<unset>"])
case("pvc terminating, beta class annotation wins", "persistentvolumeclaims", "",
     {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
      "metadata": meta("gone", deletionTimestamp=ago(seconds=1),
                       annotations={"volume.beta.kubernetes.io/storage-class": "legacy"}),
      "spec": {"storageClassName": "standard", "volumeName": "pv-9", "volumeMode": "Block"},
      "status": {"phase": "Bound", "accessModes": ["ReadOnlyMany"], "capacity": {"storage": "500Mi"}}},
     ["gone", "Terminating", "pv-9", "500Mi", "ROX", "legacy", "<unset>", "60m", "Block"])
case("pv bound", "persistentvolumes", "",
     {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": meta("pv-1", None, {"days": 3}),
      "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
               "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "standard", "volumeMode": "Filesystem",
               "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "default", "name": "data"},
               "hostPath": {"path": "/tmp/pv-1"}},
      "status": {"phase": "Bound"}},
     ["pv-1", "10Gi", "RWO", "Retain", "Bound", "default/data", "standard", "<unset>", "", "3d", "Filesystem"])
case("pv released with reason", "persistentvolumes", "",
     {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": meta("pv-2", None),
      "spec": {"capacity": {"storage": "1000M"}, "accessModes": ["ReadWriteMany", "ReadOnlyMany"],
               "persistentVolumeReclaimPolicy": "Delete", "volumeAttributesClassName": "silver"},
      "status": {"phase": "Failed", "reason": "VolumeFailedDelete"}},
     ["pv-2", "1G", "ROX,RWX", "Delete", "Failed", "", "", "silver", "VolumeFailedDelete", "60m", "<unset>"])
case("storageclass default", "storageclasses", "storage.k8s.io",
     {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "provisioner": "rancher.io/local-path",
      "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer",
      "metadata": meta("local-path", None, {"days": 9},
                       annotations={"storageclass.kubernetes.io/is-default-class": "true"})},
     ["local-path (default)", "rancher.io/local-path", "Delete", "WaitForFirstConsumer", False, "9d"])
case("storageclass beta default, expansion", "storageclasses", "storage.k8s.io",
     {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "provisioner": "example.com/csi",
      "allowVolumeExpansion": True, "reclaimPolicy": "Retain",
      "metadata": meta("fast", None, annotations={"storageclass.beta.kubernetes.io/is-default-class": "true"})},
     ["fast (default)", "example.com/csi", "Retain", "Immediate", True, "60m"])

# -- events ----------------------------------------------------------------------------------------------------
case("event core", "events", "",
     {"apiVersion": "v1", "kind": "Event", "metadata": meta("web-1.17c8a3f2e1d0b9a8", age={"minutes": 10}),
      "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-1", "fieldPath": "spec.containers{app}"},
      "reason": "Pulled", "message": "  Container image \"nginx:1.25\" already present on machine\n",
      "source": {"component": "kubelet", "host": "node-1"}, "type": "Normal", "count": 3,
      "firstTimestamp": ago(minutes=10), "lastTimestamp": ago(minutes=2)},
     ["2m", "Normal", "Pulled", "pod/web-1", "spec.containers{app}", "kubelet, node-1",
      "Container image \"nginx:1.25\" already present on machine", "10m", 3, "web-1.17c8a3f2e1d0b9a8"])
case("event new-style (eventTime, no count)", "events", "",
     {"apiVersion": "v1", "kind": "Event", "metadata": meta("web-1.17c8a3f2e1d0b9a9", age={"seconds": 45}),
      "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-1"},
      "reason": "Scheduled", "message": "Successfully assigned default/web-1 to node-1", "type": "Normal",
      "source": {}, "eventTime": ago_micro(seconds=45), "reportingComponent": "default-scheduler",
      "reportingInstance": "default-scheduler-nanokube", "action": "Binding"},
     ["45s", "Normal", "Scheduled", "pod/web-1", "", "default-scheduler, default-scheduler-nanokube",
      "Successfully assigned default/web-1 to node-1", "45s", 1, "web-1.17c8a3f2e1d0b9a9"])
case("event series", "events", "",
     {"apiVersion": "v1", "kind": "Event", "metadata": meta("svc.1"),
      "involvedObject": {"kind": "Service", "name": "lb"}, "reason": "EnsuringLoadBalancer", "type": "Normal",
      "message": "Ensuring load balancer", "eventTime": ago_micro(hours=2), "reportingComponent": "service-controller",
      "series": {"count": 12, "lastObservedTime": ago_micro(minutes=4)}},
     ["4m", "Normal", "EnsuringLoadBalancer", "service/lb", "", "service-controller", "Ensuring load balancer",
      "120m", 12, "svc.1"])
case("event about a kind without name", "events", "",
     {"apiVersion": "v1", "kind": "Event", "metadata": meta("x.1"), "involvedObject": {"kind": "Node"},
      "reason": "Starting", "type": "Warning", "message": "m", "firstTimestamp": ago(hours=3)},
     ["3h", "Warning", "Starting", "node", "", "", "m", "3h", 1, "x.1"])
case("event events.k8s.io", "events", "events.k8s.io",
     {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": meta("web-1.1"),
      "eventTime": ago_micro(minutes=8), "reportingController": "kubelet", "reportingInstance": "node-1",
      "action": "Started", "reason": "Started", "type": "Normal", "note": "Started container app",
      "regarding": {"kind": "Pod", "namespace": "default", "name": "web-1", "fieldPath": "spec.containers{app}"},
      "deprecatedCount": 2, "deprecatedFirstTimestamp": ago(minutes=8), "deprecatedLastTimestamp": ago(minutes=1),
      "deprecatedSource": {"component": "kubelet", "host": "node-1"}},
     ["60s", "Normal", "Started", "pod/web-1", "spec.containers{app}", "kubelet, node-1", "Started container app",
      "8m", 2, "web-1.1"])


@pytest.mark.parametrize("name", list(CASES))
def test_cells(name: str) -> None:
    plural, group, obj, want = CASES[name]
    table = to_table(plural, group, [obj], now=NOW)
    assert table["rows"][0]["cells"] == want
    assert len(table["rows"][0]["cells"]) == len(table["columnDefinitions"])
