"""A pod's ServiceAccount token volume: a process in the pod reads token, ca.crt and namespace from it (in
loopback mode through NANOKUBE_MOUNTS) and calls the API through the `kubernetes` Service with them, as the
official client's in-cluster configuration does."""

from __future__ import annotations

from tests.conftest import Server
from tests.polling import eventually

IN_CLUSTER = """
import json, os, ssl, urllib.request
path = "/var/run/secrets/kubernetes.io/serviceaccount"
path = json.loads(os.environ.get("NANOKUBE_MOUNTS", "{}")).get(path, path)
token = open(path + "/token").read()
namespace = open(path + "/namespace").read()
context = ssl.create_default_context(cafile=path + "/ca.crt")
url = "https://%s:%s/apis/authentication.k8s.io/v1/selfsubjectreviews" % (
    os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
request = urllib.request.Request(url, method="POST", data=b'{"kind":"SelfSubjectReview"}',
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(request, context=context))["status"]["userInfo"]["username"], namespace,
      flush=True)
import time
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
