"""The kube-dns arrangement: constants for the components that must agree on it.

kube-dns is a Service like any other: its endpoint is where the cluster DNS answers (the server's node IP
port 53 in netns mode, written by the DNS server itself), and every node's proxy DNATs the ClusterIP there.
Only when the DNS binds the ClusterIP itself (loopback mode, whose userspace proxy would add a hop and whose
host tools query the ClusterIP directly; or a --dns-listen inside the service CIDR) does the Service carry
Kubernetes' opt-out label `service.kubernetes.io/service-proxy-name`, which kube-proxy (and nanokube's
proxy) skips whatever its value; ours is `nanokube-dns`, naming who serves it instead.
"""

from __future__ import annotations

SERVICE_PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
KUBE_DNS_PROXY_NAME = "nanokube-dns"
KUBE_DNS_MANAGED_BY = "nanokube-dns"  # endpointslice.kubernetes.io/managed-by of the slices the DNS writes itself
KUBE_DNS_SERVICE = "kube-dns"
KUBE_SYSTEM = "kube-system"
KUBE_DNS_HOST_INDEX = 10  # the kube-dns ClusterIP is the service CIDR's .10, kubernetes' is .1
KUBERNETES_HOST_INDEX = 1
KUBE_DNS_METRICS_PORT = 9153  # CoreDNS's `prometheus :9153`, the kube-dns Service's port `metrics`
