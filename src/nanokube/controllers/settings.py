"""What the controllers are told by `nanokube server`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ControllerSettings:
    lb_pool: str  # CIDR ("127.240.0.0/24") or range ("10.250.0.10-10.250.0.20")
    data_dir: Path
    node_monitor_grace_period: float = 40.0
    default_toleration_seconds: float = 300.0  # not-ready/unreachable NoExecute, as DefaultTolerationSeconds
    max_endpoints_per_slice: int = 100
    lb_class: str | None = "nanokube.io/lb"  # besides Services with no loadBalancerClass
    pod_cidr: str = ""  # the cluster pod CIDR node IPAM gives /24s of; "" = no node IPAM
    reserved_pod_cidrs: dict[str, str] = field(default_factory=dict)  # node name -> the /24 only it may get
