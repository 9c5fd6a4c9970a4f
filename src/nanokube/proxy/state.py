"""The proxy's long-lived view: Service ports and endpoints by Service, and the plan derived from them.

Tracker checkouts are applied here; the result names which Services' plans changed, with the old and
the new plans, so backends touch only those. It also keeps, per Service that needs one, the health-check
node port and this node's ready endpoint count (kube-proxy's HealthCheckNodePorts / LocalReadyEndpoints).
"""

from __future__ import annotations

from nanokube.proxy.model import ServiceHealth, ServicePortInfo, ServicePortName, SliceEndpoints, local_ready_endpoints
from nanokube.proxy.plan import ServicePortPlan, plan_service_port

PlanChange = tuple[tuple[ServicePortPlan, ...], tuple[ServicePortPlan, ...]]


class ProxyState:
    def __init__(self, *, node_name: str, nodeport_ips: tuple[str, ...], node_ip: str = "") -> None:
        self.node_name = node_name
        self.nodeport_ips = nodeport_ips
        self.node_ip = node_ip  # the primary node IP: decides whether LB IPs pass their own source ranges
        self.services: dict[str, dict[ServicePortName, ServicePortInfo]] = {}
        self.endpoints: dict[str, SliceEndpoints] = {}
        self.plans: dict[str, tuple[ServicePortPlan, ...]] = {}
        self.health_checks: dict[str, ServiceHealth] = {}  # Service key -> health-check port and local count

    def _plan(self, key: str) -> tuple[ServicePortPlan, ...]:
        ports = self.services.get(key, {})
        eps = self.endpoints.get(key, {})
        return tuple(plan_service_port(name, info, eps, node_name=self.node_name, nodeport_ips=self.nodeport_ips,
                                       node_ip=self.node_ip)
                     for name, info in sorted(ports.items()))

    def _update_health(self, key: str) -> None:
        port = max((info.health_check_node_port for info in self.services.get(key, {}).values()), default=0)
        if port:
            count = local_ready_endpoints(self.endpoints.get(key, {}), self.node_name)
            self.health_checks[key] = ServiceHealth(port, count)
        else:
            self.health_checks.pop(key, None)

    def apply(self, service_changes: dict[str, tuple[dict[ServicePortName, ServicePortInfo],
                                                     dict[ServicePortName, ServicePortInfo]]],
              endpoint_changes: dict[str, tuple[SliceEndpoints, SliceEndpoints]]) -> dict[str, PlanChange]:
        for key, (_, current) in service_changes.items():
            if current:
                self.services[key] = current
            else:
                self.services.pop(key, None)
        for key, (_, current_eps) in endpoint_changes.items():
            if current_eps:
                self.endpoints[key] = current_eps
            else:
                self.endpoints.pop(key, None)
        changes: dict[str, PlanChange] = {}
        for key in {*service_changes, *endpoint_changes}:
            self._update_health(key)
            old = self.plans.get(key, ())
            new = self._plan(key)
            if new:
                self.plans[key] = new
            else:
                self.plans.pop(key, None)
            if old != new:
                changes[key] = (old, new)
        return changes
