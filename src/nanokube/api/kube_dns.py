"""The kube-dns arrangement: one constant for the two components that must agree on it.

The cluster DNS serves the `kube-dns` Service's ClusterIP itself (it binds that address, which the node makes
local), so the proxy must not program that Service. The Service carries Kubernetes' own opt-out label,
`service.kubernetes.io/service-proxy-name`, which kube-proxy (and nanokube's proxy) skips whatever its value;
ours is `nanokube-dns`, naming who serves it instead.
"""

from __future__ import annotations

SERVICE_PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
KUBE_DNS_PROXY_NAME = "nanokube-dns"
KUBE_DNS_SERVICE = "kube-dns"
KUBE_SYSTEM = "kube-system"
KUBE_DNS_HOST_INDEX = 10  # the kube-dns ClusterIP is the service CIDR's .10, kubernetes' is .1
KUBERNETES_HOST_INDEX = 1
