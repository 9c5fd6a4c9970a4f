"""The UI's indexes over the informer caches: which Services a change touches, and what one Service's entry is
built from, both without scanning the namespace.

`update()` is synchronous (called from informer handlers), so it is atomic with respect to the feeds that read
the index. Objects are the informers' own dicts, shared, never copied or changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nanokube.api.endpointslices import LABEL_SERVICE_NAME
from nanokube.api.meta import Obj

Label = tuple[str, str]


@dataclass
class Touched:
    """What one object change may have changed in the map."""

    namespace: str | None = None
    services: set[str] = field(default_factory=set)
    pods_relabelled: bool = False  # a pod came, went or changed labels: "matches no pod" hints may change
    all_services: bool = False     # the nodes' addresses changed: every Service's verdict may
    namespaces: bool = False


@dataclass
class Inputs:
    """What one Service's entry is built from (view.service_entry's arguments)."""

    svc: Obj
    slices: list[Obj]
    pods: list[Obj]
    events: list[Obj]
    reads_all_pods: bool  # the selector matches no pod: any pod's labels may change the verdict


def _name(obj: Obj) -> str:
    return obj["metadata"]["name"]


def _labels(obj: Obj | None) -> dict[str, str]:
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


def _selector_key(svc: Obj | None) -> Label | None:
    """One (key, value) pair of the selector: every pod it matches carries it. None: it matches no pod."""
    spec = (svc or {}).get("spec") or {}
    selector = spec.get("selector") or {}
    if not selector or spec.get("type") == "ExternalName":
        return None
    return min(selector.items())


def _selects(svc: Obj, labels: dict[str, str]) -> bool:
    selector = (svc.get("spec") or {}).get("selector") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _slice_owner(eps: Obj | None) -> str | None:
    return _labels(eps).get(LABEL_SERVICE_NAME) if eps else None


def _target_pods(slices: dict[str, Obj]) -> set[str]:
    return {ref["name"] for eps in slices.values() for ep in eps.get("endpoints") or []
            if (ref := ep.get("targetRef") or {}).get("kind", "Pod") == "Pod" and ref.get("name")}


class NamespaceIndex:
    def __init__(self) -> None:
        self.services: dict[str, Obj] = {}
        self.slices: dict[str, dict[str, Obj]] = {}              # Service -> slice name -> slice
        self.pods: dict[str, Obj] = {}
        self.events: dict[tuple[str, str], dict[str, Obj]] = {}   # (kind, name) -> event name -> event
        self.services_by_label: dict[Label, set[str]] = {}       # a selector's one pair -> Services
        self.pods_by_label: dict[Label, set[str]] = {}
        self.referring: dict[str, set[str]] = {}                 # pod -> Services whose slices point to it
        self.targets: dict[str, set[str]] = {}                   # Service -> pods its slices point to

    def selecting(self, labels: dict[str, str]) -> set[str]:
        """The Services whose selector matches these pod labels."""
        out: set[str] = set()
        for pair in labels.items():
            for name in self.services_by_label.get(pair, ()):
                if _selects(self.services[name], labels):
                    out.add(name)
        return out

    def affected_by_pod(self, name: str, labels: dict[str, str]) -> set[str]:
        return self.selecting(labels) | self.referring.get(name, set())

    def service(self, old: Obj | None, new: Obj | None, touched: Touched) -> None:
        name = _name(new or old)  # type: ignore[arg-type]
        old_key, new_key = _selector_key(old), _selector_key(new)
        if old_key is not None:
            self.services_by_label.get(old_key, set()).discard(name)
            if not self.services_by_label.get(old_key):
                self.services_by_label.pop(old_key, None)
        if new is None:
            self.services.pop(name, None)
        else:
            self.services[name] = new
            if new_key is not None:
                self.services_by_label.setdefault(new_key, set()).add(name)
        touched.services.add(name)

    def slice(self, old: Obj | None, new: Obj | None, touched: Touched) -> None:
        name = _name(new or old)  # type: ignore[arg-type]
        old_owner, new_owner = _slice_owner(old), _slice_owner(new)
        if old_owner and old_owner != new_owner:
            self._set_slice(old_owner, name, None)
            touched.services.add(old_owner)
        if new_owner:
            self._set_slice(new_owner, name, new)
            touched.services.add(new_owner)

    def _set_slice(self, owner: str, name: str, eps: Obj | None) -> None:
        slices = self.slices.setdefault(owner, {})
        if eps is None:
            slices.pop(name, None)
        else:
            slices[name] = eps
        before, after = self.targets.get(owner, set()), _target_pods(slices)
        for pod in before - after:
            self.referring.get(pod, set()).discard(owner)
            if not self.referring.get(pod):
                self.referring.pop(pod, None)
        for pod in after - before:
            self.referring.setdefault(pod, set()).add(owner)
        if after:
            self.targets[owner] = after
        else:
            self.targets.pop(owner, None)
        if not slices:
            del self.slices[owner]

    def pod(self, old: Obj | None, new: Obj | None, touched: Touched) -> None:
        name = _name(new or old)  # type: ignore[arg-type]
        old_labels, new_labels = (_labels(old) if old else None), (_labels(new) if new else None)
        touched.services |= self.affected_by_pod(name, old_labels or {})
        if old_labels != new_labels:
            touched.pods_relabelled = True
            for pair in (old_labels or {}).items():
                self.pods_by_label.get(pair, set()).discard(name)
                if not self.pods_by_label.get(pair):
                    self.pods_by_label.pop(pair, None)
            for pair in (new_labels or {}).items():
                self.pods_by_label.setdefault(pair, set()).add(name)
        if new is None:
            self.pods.pop(name, None)
        else:
            self.pods[name] = new
            touched.services |= self.affected_by_pod(name, new_labels or {})

    def event(self, old: Obj | None, new: Obj | None, touched: Touched) -> None:
        for ev in (old, new):
            if ev is None:
                continue
            involved = ev.get("involvedObject") or {}
            kind, obj_name = involved.get("kind"), involved.get("name") or ""
            if kind == "Service":
                touched.services.add(obj_name)
            elif kind == "Pod":
                if obj_name in self.pods:
                    touched.services |= self.selecting(_labels(self.pods[obj_name]))
            else:
                continue
            key = (kind, obj_name)
            if ev is old:
                self.events.get(key, {}).pop(_name(ev), None)
                if not self.events.get(key):
                    self.events.pop(key, None)
            else:
                self.events.setdefault(key, {})[_name(ev)] = ev

    def inputs(self, name: str) -> Inputs | None:
        svc = self.services.get(name)
        if svc is None:
            return None
        slices = [eps for _n, eps in sorted(self.slices.get(name, {}).items())]
        key = _selector_key(svc)
        candidates = self.pods_by_label.get(key, set()) if key else set()
        matched = sorted(n for n in candidates if _selects(svc, _labels(self.pods[n])))
        reads_all_pods = key is not None and not matched
        if reads_all_pods:  # the verdict names the labels that come close: it reads every pod
            pods = [self.pods[n] for n in sorted(self.pods)]
        else:
            pods = [self.pods[n] for n in matched]
        events = list(self.events.get(("Service", name), {}).values())
        for pod in matched:
            events += self.events.get(("Pod", pod), {}).values()
        return Inputs(svc, slices, pods, events, reads_all_pods)


class ClusterIndex:
    def __init__(self) -> None:
        self.namespaces: dict[str, NamespaceIndex] = {}
        self.namespace_names: set[str] = set()
        self.nodes: dict[str, Obj] = {}
        self.sorted_nodes: list[Obj] = []
        self._node_addresses: list[list[str]] = []

    def namespace(self, name: str) -> NamespaceIndex:
        """The namespace's index, to read (an empty one, not kept, for a namespace with no objects)."""
        return self.namespaces.get(name) or NamespaceIndex()

    def _writable(self, name: str) -> NamespaceIndex:
        index = self.namespaces.get(name)
        if index is None:
            index = self.namespaces[name] = NamespaceIndex()
        return index

    def update(self, kind: str, old: Obj | None, new: Obj | None) -> Touched:
        """Record an add (old None), update or delete (new None) of an object of an informer `kind`."""
        obj = new or old
        assert obj is not None
        touched = Touched()
        if kind == "namespaces":
            before = len(self.namespace_names)
            if new is None:
                self.namespace_names.discard(_name(obj))
            else:
                self.namespace_names.add(_name(obj))
            touched.namespaces = before != len(self.namespace_names)
            return touched
        if kind == "nodes":
            if new is None:
                self.nodes.pop(_name(obj), None)
            else:
                self.nodes[_name(obj)] = new
            self.sorted_nodes = [self.nodes[n] for n in sorted(self.nodes)]
            addresses = [[a.get("address") for a in (n.get("status") or {}).get("addresses") or []
                          if a.get("type") in ("InternalIP", "ExternalIP")] for n in self.sorted_nodes]
            touched.all_services = addresses != self._node_addresses
            self._node_addresses = addresses
            return touched
        touched.namespace = (obj.get("metadata") or {}).get("namespace") or "default"
        index = self._writable(touched.namespace)
        {"services": index.service, "slices": index.slice, "pods": index.pod, "events": index.event}[kind](
            old, new, touched)
        return touched
