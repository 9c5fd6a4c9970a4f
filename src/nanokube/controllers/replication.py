"""ReplicationController: the ReplicaSet controller run on v1 ReplicationControllers, as Kubernetes does
(pkg/controller/replication wraps the ReplicaSet controller in RC<->RS adapters). The only difference is the
selector, a plain map of equalities; an empty one means the template's labels (SetDefaults_ReplicationController).
"""

from __future__ import annotations

from nanokube.api.meta import Obj
from nanokube.controllers.replicaset import ReplicaSetController
from nanokube.controllers.resources import REPLICATIONCONTROLLERS


class ReplicationManager(ReplicaSetController):
    name = "replicationcontroller-controller"
    workers = 2
    resource = REPLICATIONCONTROLLERS
    kind = "ReplicationController"
    api_version = "v1"

    @staticmethod
    def label_selector(rc: Obj) -> Obj | None:
        spec = rc.get("spec") or {}
        selector = spec.get("selector") or ((spec.get("template") or {}).get("metadata") or {}).get("labels")
        return {"matchLabels": dict(selector)} if selector else None
