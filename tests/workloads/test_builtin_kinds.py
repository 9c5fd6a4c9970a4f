"""The built-in API groups beyond core/apps: served from the official schemas, defaulted and validated as
Kubernetes v1.32 does, printed as `kubectl get` prints them (the real kubectl and the official client)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes.client.rest import ApiException
from tests.conftest import module_server

HERE = Path(__file__).parent
server = module_server("--network", "loopback", "--components=", "--no-agent")


def _columns(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def test_a_rendered_helm_chart_applies_and_get_all_lists_it(server) -> None:
    out = server.kubectl("apply", "-f", str(HERE / "helm_chart.yaml")).stdout
    for created in ("serviceaccount/web", "role.rbac.authorization.k8s.io/web", "rolebinding.rbac.authorization.k8s.io/web",
                    "statefulset.apps/web", "ingress.networking.k8s.io/web", "poddisruptionbudget.policy/web",
                    "horizontalpodautoscaler.autoscaling/web", "job.batch/web-migrate"):
        assert f"{created} created" in out
    text = server.kubectl("get", "all").stdout
    blocks = {b.splitlines()[1].split()[0]: b for b in text.strip().split("\n\n")}
    assert blocks["statefulset.apps/web"].splitlines()[0].split() == ["NAME", "READY", "AGE"]
    assert blocks["statefulset.apps/web"].splitlines()[1].split()[1] == "0/2"
    assert _columns(blocks["job.batch/web-migrate"])[0] == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert _columns(blocks["job.batch/web-migrate"])[1][1:3] == ["Running", "0/1"]
    hpa = _columns(blocks["horizontalpodautoscaler.autoscaling/web"])
    assert hpa[0] == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    assert hpa[1][1:7] == ["StatefulSet/web", "cpu:", "<unknown>/70%", "2", "5", "0"]
    assert "service/web-headless" in text and "None" in blocks["service/kubernetes"]
    # Ingress, PDB and RBAC objects are not in the "all" category, as in Kubernetes.
    assert "ingress" not in text and "poddisruptionbudget" not in text and "rolebinding" not in text

    ing = _columns(server.kubectl("get", "ingress", "web").stdout)
    assert ing[0] == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"] and ing[1][:4] == ["web", "nginx",
                                                                                             "web.example.com", "80"]
    pdb = _columns(server.kubectl("get", "pdb", "web").stdout)
    assert pdb[1][:4] == ["web", "1", "N/A", "0"]
    rb = _columns(server.kubectl("get", "rolebinding", "web", "-o", "wide").stdout)
    assert rb[0] == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert rb[1][1] == "Role/web" and rb[1][-1] == "default/web"
    assert _columns(server.kubectl("get", "role", "web").stdout)[0] == ["NAME", "CREATED", "AT"]
    # A second apply changes nothing. (kubectl still sends, and says "configured" for, the StatefulSet's
    # volumeClaimTemplates and the PDB's replace-strategy selector, as against any cluster.)
    again = server.kubectl("apply", "-f", str(HERE / "helm_chart.yaml")).stdout
    for kind in ("serviceaccount", "role.rbac.authorization.k8s.io", "ingress.networking.k8s.io",
                 "horizontalpodautoscaler.autoscaling", "job.batch", "service"):
        assert f"{kind}/web" in again and all("unchanged" in line for line in again.splitlines()
                                               if line.startswith(f"{kind}/web"))
    assert _get(server, "sts", "web")["metadata"]["generation"] == 1


def _get(server, *args: str) -> dict:
    return json.loads(server.kubectl("get", *args, "-o", "json").stdout)


def test_defaults_where_kubernetes_defaults(server) -> None:
    server.apply("""
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds1}
spec:
  selector: {matchLabels: {app: ds1}}
  template:
    metadata: {labels: {app: ds1}}
    spec: {containers: [{name: c, image: nginx}]}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: cj1}
spec:
  schedule: "*/5 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: ReplicationController
metadata: {name: rc1}
spec:
  template:
    metadata: {labels: {app: rc1}}
    spec: {containers: [{name: c, image: nginx}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np1}
spec:
  podSelector: {matchLabels: {app: db}}
  egress: [{ports: [{port: 53}]}]
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: crb1}
roleRef: {kind: ClusterRole, name: view}
subjects: [{kind: Group, name: devs}, {kind: ServiceAccount, name: default, namespace: default}]
""")
    ds = _get(server, "ds", "ds1")
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                            "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert ds["spec"]["revisionHistoryLimit"] == 10 and ds["metadata"]["generation"] == 1
    assert ds["status"] == {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                            "numberReady": 0}
    cj = _get(server, "cronjob", "cj1")
    assert (cj["spec"]["concurrencyPolicy"], cj["spec"]["suspend"], cj["spec"]["successfulJobsHistoryLimit"],
            cj["spec"]["failedJobsHistoryLimit"]) == ("Allow", False, 3, 1)
    job_spec = cj["spec"]["jobTemplate"]["spec"]
    assert (job_spec["backoffLimit"], job_spec["completionMode"], job_spec["parallelism"]) == (6, "NonIndexed", 1)
    rc = _get(server, "rc", "rc1")
    assert rc["spec"]["selector"] == {"app": "rc1"} and rc["metadata"]["labels"] == {"app": "rc1"}
    assert rc["spec"]["replicas"] == 1 and rc["status"] == {"replicas": 0}
    np = _get(server, "netpol", "np1")
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert np["spec"]["egress"][0]["ports"][0]["protocol"] == "TCP"
    assert _get(server, "pc", "high")["preemptionPolicy"] == "PreemptLowerPriority"
    crb = _get(server, "clusterrolebinding", "crb1")
    assert crb["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
    assert crb["subjects"][0]["apiGroup"] == "rbac.authorization.k8s.io" and "apiGroup" not in crb["subjects"][1]
    job = _get(server, "job", "web-migrate") if server.kubectl("get", "job", "web-migrate", check=False).returncode == 0 \
        else None
    if job is not None:
        uid = job["metadata"]["uid"]
        assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        assert job["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "web-migrate"
        assert job["spec"]["podReplacementPolicy"] == "TerminatingOrFailed"


@pytest.mark.parametrize(("manifest", "message"), [
    ("""apiVersion: batch/v1
kind: Job
metadata: {name: bad-job}
spec:
  template:
    spec: {containers: [{name: c, image: busybox}]}
""", 'The Job "bad-job" is invalid: spec.template.spec.restartPolicy: Unsupported value: "Always": supported '
     'values: "Never", "OnFailure"'),
    ("""apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bad-rb}
subjects: [{kind: User, name: bob}]
""", 'The RoleBinding "bad-rb" is invalid: roleRef: Required value'),
    ("""apiVersion: apps/v1
kind: StatefulSet
metadata: {name: bad-sts}
spec:
  selector: {matchLabels: {app: one}}
  template:
    metadata: {labels: {app: two}}
    spec: {containers: [{name: c, image: nginx}]}
""", 'The StatefulSet "bad-sts" is invalid: spec.template.metadata.labels: Invalid value: '
     'map[string]string{"app":"two"}: `selector` does not match template `labels`'),
    ("""apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: bad-crb}
roleRef: {kind: Role, name: web}
subjects: [{kind: ServiceAccount, name: default}, {kind: Robot, name: r2}]
""", 'The ClusterRoleBinding "bad-crb" is invalid: \n* roleRef.kind: Unsupported value: "Role": supported values: '
     '"ClusterRole"\n* subjects[0].namespace: Required value\n* subjects[1].kind: Unsupported value: "Robot": '
     'supported values: "ServiceAccount", "User", "Group"'),
    ("""apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: bad-role}
rules: [{apiGroups: [""], resources: [pods]}]
""", 'The Role "bad-role" is invalid: rules[0].verbs: Required value: verbs must contain at least one value'),
    ("""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bad-ing}
spec:
  rules:
  - http:
      paths:
      - {path: api, pathType: Prefix, backend: {service: {name: web}}}
      - {path: /x, pathType: Regex, backend: {service: {name: web, port: {number: 80}}}}
""", 'The Ingress "bad-ing" is invalid: \n* spec.rules[0].http.paths[0].path: Invalid value: "api": must be an '
     'absolute path\n* spec.rules[0].http.paths[0].backend.service.port: Required value: port name or number is '
     'required\n* spec.rules[0].http.paths[1].pathType: Unsupported value: "Regex": supported values: "Exact", '
     '"ImplementationSpecific", "Prefix"'),
    ("""apiVersion: batch/v1
kind: CronJob
metadata: {name: bad-cron}
spec:
  schedule: "61 * * * *"
  timeZone: Mars/Olympus
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: c, image: busybox}]
""", 'The CronJob "bad-cron" is invalid: \n* spec.schedule: Invalid value: "61 * * * *": end of range (61) above '
     'maximum (59): 61\n* spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus'),
    ("""apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: bad-hpa}
spec: {maxReplicas: 3}
""", 'The HorizontalPodAutoscaler "bad-hpa" is invalid: spec.scaleTargetRef: Required value'),
])
def test_invalid_objects_are_refused_with_the_field_path(server, manifest: str, message: str) -> None:
    proc = server.kubectl("apply", "-f", "-", input=manifest, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr
    kind = manifest.split("kind: ")[1].split()[0].lower()
    name = manifest.split("name: ")[1].split("}")[0]
    assert server.kubectl("get", kind, name, check=False).returncode != 0  # nothing was stored


def test_scale_subresources_and_status_semantics(server) -> None:
    server.apply("""
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: scaled}
spec:
  serviceName: scaled
  selector: {matchLabels: {app: scaled}}
  template:
    metadata: {labels: {app: scaled}}
    spec: {containers: [{name: c, image: nginx}]}
""")
    server.kubectl("scale", "statefulset", "scaled", "--replicas=4")
    client, api_client = server.client()
    apps = client.AppsV1Api(api_client)
    scale = apps.read_namespaced_stateful_set_scale("scaled", "default")
    assert (scale.spec.replicas, scale.status.replicas, scale.status.selector) == (4, 0, "app=scaled")
    sts = apps.read_namespaced_stateful_set("scaled", "default")
    assert sts.metadata.generation == 2  # the spec changed once
    # A write to the main resource keeps status; /status keeps the spec.
    apps.patch_namespaced_stateful_set("scaled", "default", {"status": {"replicas": 9}})
    assert apps.read_namespaced_stateful_set("scaled", "default").status.replicas == 0
    apps.patch_namespaced_stateful_set_status("scaled", "default", {"status": {"replicas": 1, "readyReplicas": 1},
                                                                    "spec": {"replicas": 7}})
    sts = apps.read_namespaced_stateful_set("scaled", "default")
    assert (sts.status.replicas, sts.spec.replicas, sts.metadata.generation) == (1, 4, 2)
    assert _columns(server.kubectl("get", "sts", "scaled").stdout)[1][1] == "1/4"

    core = client.CoreV1Api(api_client)
    core.create_namespaced_replication_controller("default", client.V1ReplicationController(
        metadata=client.V1ObjectMeta(name="rc-scale"),
        spec=client.V1ReplicationControllerSpec(template=client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels={"app": "rcs", "tier": "x"}),
            spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="nginx")])))))
    server.kubectl("scale", "rc", "rc-scale", "--replicas=3")
    scale = core.read_namespaced_replication_controller_scale("rc-scale", "default")
    assert (scale.spec.replicas, scale.status.selector) == (3, "app=rcs,tier=x")


def test_the_official_client_round_trips_every_new_kind(server) -> None:
    client, api_client = server.client()
    batch = client.BatchV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    net = client.NetworkingV1Api(api_client)
    policy = client.PolicyV1Api(api_client)
    hpa = client.AutoscalingV2Api(api_client)
    node = client.NodeV1Api(api_client)
    core = client.CoreV1Api(api_client)
    meta = client.V1ObjectMeta
    pod = client.V1PodTemplateSpec(spec=client.V1PodSpec(restart_policy="Never", containers=[
        client.V1Container(name="c", image="busybox")]))
    batch.create_namespaced_job("default", client.V1Job(metadata=meta(name="py-job"), spec=client.V1JobSpec(
        template=pod, completions=3, parallelism=2)))
    job = batch.read_namespaced_job("py-job", "default")
    assert job.spec.selector.match_labels["batch.kubernetes.io/controller-uid"] == job.metadata.uid
    assert [j.metadata.name for j in batch.list_namespaced_job("default", label_selector="job-name=py-job").items] \
        == ["py-job"]
    rbac.create_cluster_role(client.V1ClusterRole(metadata=meta(name="py-reader"), rules=[
        client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get"])]))
    assert rbac.read_cluster_role("py-reader").rules[0].verbs == ["get"]
    net.create_ingress_class(client.V1IngressClass(metadata=meta(name="py-class"), spec=client.V1IngressClassSpec(
        controller="example.com/ingress")))
    assert [c.metadata.name for c in net.list_ingress_class().items] == ["py-class"]
    policy.create_namespaced_pod_disruption_budget("default", client.V1PodDisruptionBudget(
        metadata=meta(name="py-pdb"), spec=client.V1PodDisruptionBudgetSpec(max_unavailable="50%")))
    assert policy.read_namespaced_pod_disruption_budget("py-pdb", "default").status.expected_pods == 0
    hpa.create_namespaced_horizontal_pod_autoscaler("default", client.V2HorizontalPodAutoscaler(
        metadata=meta(name="py-hpa"), spec=client.V2HorizontalPodAutoscalerSpec(
            max_replicas=3, scale_target_ref=client.V2CrossVersionObjectReference(kind="Deployment", name="d"))))
    created = hpa.read_namespaced_horizontal_pod_autoscaler("py-hpa", "default")
    assert created.spec.min_replicas == 1 and created.spec.metrics[0].resource.target.average_utilization == 80
    node.create_runtime_class(client.V1RuntimeClass(metadata=meta(name="py-rt"), handler="runc"))
    core.create_namespaced_resource_quota("default", client.V1ResourceQuota(
        metadata=meta(name="py-quota"), spec=client.V1ResourceQuotaSpec(hard={"pods": "10"})))
    core.create_namespaced_limit_range("default", client.V1LimitRange(metadata=meta(name="py-limits"),
                                                                      spec=client.V1LimitRangeSpec(limits=[
        client.V1LimitRangeItem(type="Container", max={"cpu": "2"})])))
    limits = core.read_namespaced_limit_range("py-limits", "default").spec.limits[0]
    assert limits.default == {"cpu": "2"} and limits.default_request == {"cpu": "2"}
    with pytest.raises(ApiException) as info:
        node.create_runtime_class(client.V1RuntimeClass(metadata=meta(name="py-rt"), handler="runc"))
    assert info.value.status == 409
    batch.delete_namespaced_job("py-job", "default")
    with pytest.raises(ApiException) as info:
        batch.read_namespaced_job("py-job", "default")
    assert info.value.status == 404


def test_discovery_lists_every_group(server) -> None:
    out = server.kubectl("api-resources", "-o", "wide").stdout
    for line in ("statefulsets sts apps/v1 true StatefulSet", "jobs batch/v1 true Job",
                 "cronjobs cj batch/v1 true CronJob",
                 "horizontalpodautoscalers hpa autoscaling/v2 true HorizontalPodAutoscaler",
                 "ingresses ing networking.k8s.io/v1 true Ingress",
                 "poddisruptionbudgets pdb policy/v1 true PodDisruptionBudget",
                 "clusterrolebindings rbac.authorization.k8s.io/v1 false ClusterRoleBinding",
                 "priorityclasses pc scheduling.k8s.io/v1 false PriorityClass",
                 "runtimeclasses node.k8s.io/v1 false RuntimeClass",
                 "replicationcontrollers rc v1 true ReplicationController"):
        assert any(" ".join(row.split()).startswith(line) for row in out.splitlines()), line
    explained = server.kubectl("explain", "job.spec.backoffLimit").stdout
    assert "FIELD: backoffLimit <integer>" in explained


def test_kubectl_create_commands_send_protobuf_that_is_understood(server) -> None:
    for args in (("job", "pb-job", "--image=busybox", "--", "echo", "hi"),
                 ("cronjob", "pb-cron", "--image=busybox", "--schedule=*/5 * * * *", "--", "echo", "hi"),
                 ("job", "pb-manual", "--from=cronjob/pb-cron"),
                 ("role", "pb-role", "--verb=get,list", "--resource=pods"),
                 ("rolebinding", "pb-rb", "--role=pb-role", "--user=bob", "--serviceaccount=default:pb-sa"),
                 ("clusterrole", "pb-cr", "--verb=get", "--resource=nodes"),
                 ("clusterrolebinding", "pb-crb", "--clusterrole=pb-cr", "--group=devs"),
                 ("poddisruptionbudget", "pb-pdb", "--selector=app=web", "--min-available=0"),
                 ("priorityclass", "pb-pc", "--value=100", "--description=high"),
                 ("quota", "pb-quota", "--hard=pods=10,cpu=2"),
                 ("ingress", "pb-ing", "--class=nginx", "--rule=a.example.com/*=web:80,tls=web-cert"),
                 ("serviceaccount", "pb-sa")):
        server.kubectl("create", *args)
    cron = _get(server, "cronjob", "pb-cron")
    assert cron["spec"]["schedule"] == "*/5 * * * *"
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert (container["image"], container["command"]) == ("busybox", ["echo", "hi"])
    manual = _get(server, "job", "pb-manual")
    assert manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert manual["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert _get(server, "role", "pb-role")["rules"] == [{"verbs": ["get", "list"], "apiGroups": [""],
                                                         "resources": ["pods"]}]
    rb = _get(server, "rolebinding", "pb-rb")
    assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pb-role"}
    assert {s["kind"] for s in rb["subjects"]} == {"User", "ServiceAccount"}
    assert _get(server, "pdb", "pb-pdb")["spec"]["minAvailable"] == 0  # set to 0, not absent
    assert _get(server, "pc", "pb-pc")["value"] == 100
    assert _get(server, "quota", "pb-quota")["spec"]["hard"] == {"pods": "10", "cpu": "2"}
    ing = _get(server, "ingress", "pb-ing")["spec"]
    assert ing["ingressClassName"] == "nginx" and ing["tls"] == [{"hosts": ["a.example.com"], "secretName": "web-cert"}]
    assert ing["rules"][0]["http"]["paths"][0] == {"path": "/", "pathType": "Prefix", "backend": {
        "service": {"name": "web", "port": {"number": 80}}}}


def test_kubectl_autoscale_through_autoscaling_v1_is_stored_as_v2(server) -> None:
    server.apply("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: scaled-web}
spec:
  selector: {matchLabels: {app: scaled-web}}
  template:
    metadata: {labels: {app: scaled-web}}
    spec: {containers: [{name: c, image: nginx}]}
""")
    server.kubectl("autoscale", "deployment", "scaled-web", "--max=4", "--cpu-percent=60")
    v1 = json.loads(server.kubectl("get", "--raw", "/apis/autoscaling/v1/namespaces/default/"
                                   "horizontalpodautoscalers/scaled-web").stdout)
    assert v1["apiVersion"] == "autoscaling/v1"
    assert (v1["spec"]["targetCPUUtilizationPercentage"], v1["spec"]["maxReplicas"]) == (60, 4)
    v2 = json.loads(server.kubectl("get", "--raw", "/apis/autoscaling/v2/namespaces/default/"
                                   "horizontalpodautoscalers/scaled-web").stdout)
    assert v2["spec"]["metrics"] == [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 60}}}]
    row = next(r for r in _columns(server.kubectl("get", "hpa").stdout) if r[0] == "scaled-web")
    assert row[1:4] == ["Deployment/scaled-web", "cpu:", "<unknown>/60%"]
    # a v2-only field survives a v1 round trip (kept in the alpha annotation, as Kubernetes does)
    client, api_client = server.client()
    hpa_v2 = client.AutoscalingV2Api(api_client)
    hpa_v2.patch_namespaced_horizontal_pod_autoscaler("scaled-web", "default", {"spec": {"metrics": [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue",
                                                                       "averageValue": "100Mi"}}}]}})
    hpa_v1 = client.AutoscalingV1Api(api_client)
    old = hpa_v1.read_namespaced_horizontal_pod_autoscaler("scaled-web", "default")
    assert old.spec.target_cpu_utilization_percentage == 50
    assert "memory" in old.metadata.annotations["autoscaling.alpha.kubernetes.io/metrics"]
    hpa_v1.patch_namespaced_horizontal_pod_autoscaler("scaled-web", "default", {"spec": {"maxReplicas": 6}})
    after = hpa_v2.read_namespaced_horizontal_pod_autoscaler("scaled-web", "default")
    assert after.spec.max_replicas == 6 and [m.resource.name for m in after.spec.metrics] == ["cpu", "memory"]
    assert not (after.metadata.annotations or {}).get("autoscaling.alpha.kubernetes.io/metrics")


def test_updates_kubernetes_forbids_are_refused(server) -> None:
    server.apply("""
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: frozen}
spec:
  serviceName: frozen
  selector: {matchLabels: {app: frozen}}
  template:
    metadata: {labels: {app: frozen}}
    spec: {containers: [{name: c, image: nginx}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: frozen}
spec:
  selector: {matchLabels: {app: frozen}}
  template:
    metadata: {labels: {app: frozen}}
    spec: {containers: [{name: c, image: nginx}]}
""")
    proc = server.kubectl("patch", "sts", "frozen", "--type=merge", "-p", '{"spec":{"serviceName":"other"}}',
                          check=False)
    assert proc.returncode != 0
    assert ('The StatefulSet "frozen" is invalid: spec: Forbidden: updates to statefulset spec for fields other '
            "than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
            "'minReadySeconds' are forbidden") in proc.stderr
    server.kubectl("patch", "sts", "frozen", "--type=merge", "-p", '{"spec":{"replicas":2,"minReadySeconds":5}}')
    proc = server.kubectl("patch", "ds", "frozen", "--type=merge", "-p",
                          '{"spec":{"selector":{"matchLabels":{"app":"x"}},"template":{"metadata":{"labels":'
                          '{"app":"x"}}}}}', check=False)
    assert proc.returncode != 0
    assert ('The DaemonSet "frozen" is invalid: spec.selector: Invalid value: &v1.LabelSelector{MatchLabels:'
            'map[string]string{"app":"x"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable'
            ) in proc.stderr


def test_a_role_binding_keeps_its_role_ref(server) -> None:
    server.kubectl("create", "rolebinding", "pinned", "--role=first", "--user=ann")
    proc = server.kubectl("patch", "rolebinding", "pinned", "--type=merge", "-p", '{"roleRef":{"name":"second"}}',
                          check=False)
    assert proc.returncode != 0
    assert ('The RoleBinding "pinned" is invalid: roleRef: Invalid value: rbac.RoleRef{APIGroup:'
            '"rbac.authorization.k8s.io", Kind:"Role", Name:"second"}: cannot change roleRef') in proc.stderr


def test_a_jobs_template_cannot_change(server) -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "hook"}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}}}
    server.apply(job)
    job["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:1.36"
    proc = server.kubectl("apply", "-f", "-", input=json.dumps(job), check=False)
    assert proc.returncode != 0
    assert 'The Job "hook" is invalid: spec.template: Invalid value: ' in proc.stderr
    assert ": field is immutable" in proc.stderr
    server.kubectl("patch", "job", "hook", "--type=merge", "-p", '{"spec":{"activeDeadlineSeconds":60}}')


API_SERVICE = """
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1alpha1.wardle.example.com
spec:
  group: wardle.example.com
  version: v1alpha1
  groupPriorityMinimum: 2000
  versionPriority: 10
  insecureSkipTLSVerify: true
  service: {namespace: wardle, name: api}
"""


def test_api_services_are_stored_listed_and_conflict_on_a_second_create(server) -> None:
    assert "apiservice.apiregistration.k8s.io/v1alpha1.wardle.example.com created" in \
        server.kubectl("create", "-f", "-", input=API_SERVICE).stdout
    again = server.kubectl("create", "-f", "-", input=API_SERVICE, check=False)
    assert again.returncode == 1 and "AlreadyExists" in again.stderr, again.stderr
    rows = _columns(server.kubectl("get", "apiservices").stdout)
    assert rows[0] == ["NAME", "SERVICE", "AVAILABLE", "AGE"]
    assert rows[1][:3] == ["v1alpha1.wardle.example.com", "wardle/api", "Unknown"]
    bad = server.kubectl("create", "-f", "-", input=API_SERVICE.replace("groupPriorityMinimum: 2000",
                                                                        "groupPriorityMinimum: many"), check=False)
    assert bad.returncode == 1 and "groupPriorityMinimum" in bad.stderr, bad.stderr
    server.kubectl("delete", "apiservice", "v1alpha1.wardle.example.com")
