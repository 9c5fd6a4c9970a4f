"""Golden text: Tables rendered as kubectl lays them out reproduce the article's `kubectl get` output.

The article lost its IP addresses when it was extracted; the ones here have the widths its header spacing
implies, so every header line below is the article's own, byte for byte.
"""

from __future__ import annotations

from nanokube.apiserver.printing import to_table

from .kubectl_text import render
from .objects import EXTERNAL_NAME, NOW, article_services, container_status, meta, pod, service, tcp


def svc_table(*names: str) -> dict:
    services = article_services()
    return to_table("services", "", [services[n] for n in names], now=NOW)


def test_kubectl_get_svc() -> None:
    assert render(svc_table("kubernetes", "mariadb-service")) == (
        "NAME              TYPE        CLUSTER-IP     EXTERNAL-IP   PORT(S)    AGE\n"
        "kubernetes        ClusterIP   10.96.0.1      <none>        443/TCP    5h23m\n"
        "mariadb-service   ClusterIP   10.108.38.75   <none>        3306/TCP   113s\n"
    )


def test_kubectl_get_nodeport_service_wide() -> None:
    assert render(svc_table("svc-nodeport-mariadb"), wide=True) == (
        "NAME                   TYPE       CLUSTER-IP     EXTERNAL-IP   PORT(S)          AGE    SELECTOR\n"
        "svc-nodeport-mariadb   NodePort   10.97.14.218   <none>        3306:31111/TCP   100s   app=mariadb\n"
    )


def test_kubectl_get_loadbalancer_service() -> None:
    assert render(svc_table("svc-mariadb-loadbalancer")) == (
        "NAME                       TYPE           CLUSTER-IP     EXTERNAL-IP    PORT(S)          AGE\n"
        "svc-mariadb-loadbalancer   LoadBalancer   10.104.22.31   34.123.45.67   3306:30942/TCP   55s\n"
    )


def test_kubectl_get_loadbalancer_service_before_an_address_is_assigned() -> None:
    pending = service("svc-mariadb-loadbalancer", "LoadBalancer", cluster_ip="10.104.22.31",
                      ports=[tcp(3306, 30942)], age={"seconds": 5})
    assert render(to_table("services", "", [pending], now=NOW)) == (
        "NAME                       TYPE           CLUSTER-IP     EXTERNAL-IP   PORT(S)          AGE\n"
        "svc-mariadb-loadbalancer   LoadBalancer   10.104.22.31   <pending>     3306:30942/TCP   5s\n"
    )


def test_kubectl_get_external_name_service() -> None:
    assert render(svc_table("training-aurora-svc")) == (
        "NAME                  TYPE           CLUSTER-IP   EXTERNAL-IP"
        "                                                       PORT(S)   AGE\n"
        f"training-aurora-svc   ExternalName   <none>       {EXTERNAL_NAME}   <none>    97s\n"
    )


def test_kubectl_get_pods() -> None:
    mariadb = pod("mariadb-deployment-68b7fcd4cd-7sc5l", statuses=[container_status()],
                  conditions=[{"type": "Ready", "status": "True"}])
    assert render(to_table("pods", "", [mariadb], now=NOW)) == (
        "NAME                                  READY   STATUS    RESTARTS   AGE\n"
        "mariadb-deployment-68b7fcd4cd-7sc5l   1/1     Running   0          12h\n"
    )


def test_kubectl_get_nodes_wide_starts_like_the_article() -> None:
    nodes = []
    for suffix, ip in (("gvs0", "10.128.0.55"), ("hw1h", "10.128.0.56"), ("w53n", "10.128.0.57")):
        nodes.append({
            "metadata": meta(f"gke-k8s-training-clu-k8s-training-wor-f25d17e7-{suffix}", None,
                             {"days": 5, "hours": 15, "minutes": 2}),
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": ip}, {"type": "ExternalIP",
                                                                             "address": "34.69.1.2"}],
                       "nodeInfo": {"kubeletVersion": "v1.27.8-gke.1067004", "osImage": "Container-Optimized OS",
                                    "kernelVersion": "5.15.133+", "containerRuntimeVersion": "containerd://1.7.10"}},
        })
    lines = render(to_table("nodes", "", nodes, now=NOW), wide=True).splitlines()
    # The article's lines stop after VERSION (and its header after EXTERNAL-IP).
    assert lines[0].startswith(
        "NAME                                                  STATUS   ROLES    AGE     VERSION               "
        "INTERNAL-IP   EXTERNAL-IP  ")
    assert lines[1].startswith(
        "gke-k8s-training-clu-k8s-training-wor-f25d17e7-gvs0   Ready    <none>   5d15h   v1.27.8-gke.1067004")
    assert lines[3].startswith(
        "gke-k8s-training-clu-k8s-training-wor-f25d17e7-w53n   Ready    <none>   5d15h   v1.27.8-gke.1067004")
