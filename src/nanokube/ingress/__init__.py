"""The built-in Ingress controller: renders nginx's configuration from Ingresses, Services and EndpointSlices
and runs nginx as a child process (as ingress-nginx does)."""

from nanokube.ingress.run import IngressSettings, run_ingress

__all__ = ["IngressSettings", "run_ingress"]
