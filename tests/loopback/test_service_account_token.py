"""A pod's ServiceAccount token volume: a process in the pod reads token, ca.crt and namespace from it (in
loopback mode through NANOKUBE_MOUNTS) and calls the API through the `kubernetes` Service with them, through the
official client's in-cluster configuration (KUBERNETES_SERVICE_HOST/PORT, `bearer <token>`)."""

from __future__ import annotations

from tests.conftest import Server
from tests.polling import eventually

IN_CLUSTER = """
import json, os, time
from kubernetes import client
from kubernetes.config.incluster_config import InClusterConfigLoader
path = "/var/run/secrets/kubernetes.io/serviceaccount"
path = json.loads(os.environ.get("NANOKUBE_MOUNTS", "{}")).get(path, path)
InClusterConfigLoader(token_filename=path + "/token", cert_filename=path + "/ca.crt").load_and_set()
review = client.AuthenticationV1Api().create_self_subject_review({"kind": "SelfSubjectReview"})
print(review.status.user_info.username, open(path + "/namespace").read(), flush=True)
time.sleep(3600)
"""


def test_pod_calls_the_api_with_its_service_account_token(cluster: Server) -> None:
    cluster.kubectl("create", "serviceaccount", "reader")
    cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "in-cluster"},
                   "spec": {"serviceAccountName": "reader", "terminationGracePeriodSeconds": 1,
                            "containers": [{"name": "app", "image": "python", "command": ["python3", "-c", IN_CLUSTER]}]}})
    out = eventually(lambda: cluster.kubectl("logs", "in-cluster", check=False).stdout.strip(), 60,
                     what="the pod's answer from the API")
    assert out == "system:serviceaccount:default:reader default"
    pod = cluster.kubectl("get", "pod", "in-cluster", "-o", "jsonpath={.spec.volumes[0].name}").stdout
    assert pod.startswith("kube-api-access-")
