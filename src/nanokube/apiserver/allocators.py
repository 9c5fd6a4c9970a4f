"""ClusterIP and NodePort allocation for Services, as kube-apiserver v1.32 does it (in-memory bitmaps).

- IPAllocator / PortAllocator: the bitmap allocators with the KEP-3070 static/dynamic band split.
  Dynamic picks start at a random offset inside the upper (dynamic) band and scan forward with wrap-around;
  only a full upper band falls back to the lower (static) band. Requested values may be anywhere in range.
- ServiceAllocator: the Service REST's beginCreate / beginUpdate / afterDelete (Kubernetes'
  pkg/registry/core/service/storage/{storage.go,alloc.go}); each returns an Allocation.
- Allocation: what one write reserves and frees. Its ops() are one key per held value
  (`/registry/ranges/...`), written in the same store transaction as the Service, so two API servers racing
  for one value cannot both create its key; the registry commits it after the write or reverts it.

Defaulting and validation are the Service strategy's (apiserver/strategies.py, api/service.py);
apiserver/services.py reconciles the keys with the stored Services on start and loads the allocator.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nanokube.api.errors import ApiError, FieldError, internal, invalid, invalid_object
from nanokube.api.service import (
    CLUSTER_IP_NONE,
    EXTERNAL_NAME,
    LOAD_BALANCER,
    NODE_PORT,
    REQUIRE_DUAL_STACK,
    SINGLE_STACK,
    as_int,
    held_ips,
    held_ports,
    needs_health_check,
    normalize_cluster_ips,
    patch_allocated_values,
    ports_of,
    service_type,
    should_allocate_node_ports,
    spec_of,
    validate_cluster_ips_related_fields,
)
from nanokube.api.validation import parse_ip_sloppy, parse_port_range
from nanokube.store.base import Op


class AllocatorError(Exception):
    """An allocator failure; str() is the exact Go error text."""


class NotInRangeError(AllocatorError):
    pass


class AlreadyAllocatedError(AllocatorError):
    pass


class RangeFullError(AllocatorError):
    def __init__(self) -> None:
        super().__init__("range is full")


class _BandedBitmap:
    """Offsets 0..size-1; [0, static) is the static band, [static, size) the dynamic band."""

    def __init__(self, size: int, static: int, rng: random.Random) -> None:
        self.size = max(size, 0)
        self.static = static if 0 < static < self.size else 0
        self.used: set[int] = set()
        self._rng = rng

    def take(self, offset: int) -> bool:
        if offset in self.used:
            return False
        self.used.add(offset)
        return True

    def take_next(self) -> int | None:
        if len(self.used) >= self.size:
            return None
        upper = self.size - self.static
        found = self._scan(self.static, upper)
        if found is None and self.static:
            found = self._scan(0, self.static)
        if found is not None:
            self.used.add(found)
        return found

    def _scan(self, start: int, length: int) -> int | None:
        if length <= 0:
            return None
        first = self._rng.randrange(length)
        for i in range(length):
            offset = start + (first + i) % length
            if offset not in self.used:
                return offset
        return None


def ip_range_offset(cidr_size: int) -> int:
    """KEP-3070 static band size for a service CIDR: min(max(16, size/16), 256), 0 for tiny ranges."""
    if cidr_size <= 16:
        return 0
    return min(max(16, cidr_size // 16), 256)


def port_range_offset(range_size: int) -> int:
    """KEP-3070 static band size for the NodePort range: min(max(16, size/32), 128), 0 for tiny ranges."""
    if range_size <= 16:
        return 0
    return min(max(16, range_size // 32), 128)


class IPAllocator:
    """Service IPs of one CIDR: network (and, for IPv4, broadcast) addresses are never handed out."""

    def __init__(self, cidr: str, rng: random.Random | None = None) -> None:
        self.network = ipaddress.ip_network(cidr, strict=False)
        self.family = "IPv4" if self.network.version == 4 else "IPv6"
        cidr_size = self.network.num_addresses
        size = cidr_size if self.family == "IPv6" else cidr_size - 1
        if self.family == "IPv6":
            size = min(size, 65536)
        size -= 1
        self._base = int(self.network.network_address) + 1
        self._bits = _BandedBitmap(size, ip_range_offset(cidr_size), rng or random.Random())

    @property
    def cidr(self) -> str:
        return str(self.network)

    @property
    def static_band(self) -> tuple[str, str] | None:
        if not self._bits.static:
            return None
        return self._ip(0), self._ip(self._bits.static - 1)

    @property
    def dynamic_band(self) -> tuple[str, str]:
        return self._ip(self._bits.static), self._ip(self._bits.size - 1)

    def _ip(self, offset: int) -> str:
        return str(ipaddress.ip_address(self._base + offset))

    def _offset(self, ip: str) -> int | None:
        addr = parse_ip_sloppy(ip)
        if addr is None or addr.version != self.network.version or addr not in self.network:
            return None
        offset = int(addr) - self._base
        return offset if 0 <= offset < self._bits.size else None

    def _not_in_range(self, ip: str) -> NotInRangeError:
        addr = parse_ip_sloppy(ip)
        shown = str(addr) if addr is not None else "<nil>"
        return NotInRangeError(f"the provided IP ({shown}) is not in the valid range. "
                               f"The range of valid IPs is {self.network}")

    def allocate(self, ip: str) -> str:
        """Reserve a specific IP (either band); returns its canonical text."""
        offset = self._offset(ip)
        if offset is None:
            raise self._not_in_range(ip)
        if not self._bits.take(offset):
            raise AlreadyAllocatedError("provided IP is already allocated")
        return self._ip(offset)

    def check(self, ip: str) -> str:
        """Dry-run form of allocate: only the range is checked (Kubernetes does not check it is free)."""
        offset = self._offset(ip)
        if offset is None:
            raise self._not_in_range(ip)
        return self._ip(offset)

    def allocate_next(self) -> str:
        offset = self._bits.take_next()
        if offset is None:
            raise RangeFullError()
        return self._ip(offset)

    def release(self, ip: str) -> None:
        offset = self._offset(ip)
        if offset is not None:
            self._bits.used.discard(offset)

    def has(self, ip: str) -> bool:
        offset = self._offset(ip)
        return offset is not None and offset in self._bits.used

    def load(self, ips: Iterable[str]) -> None:
        for ip in ips:
            offset = self._offset(ip)
            if offset is not None:
                self._bits.used.add(offset)

    def used(self) -> list[str]:
        return [self._ip(o) for o in sorted(self._bits.used)]

    def free(self) -> int:
        return self._bits.size - len(self._bits.used)


class PortAllocator:
    """NodePorts out of an inclusive range (default 30000-32767)."""

    def __init__(self, port_range: str = "30000-32767", rng: random.Random | None = None) -> None:
        self.base, size = parse_port_range(port_range)
        self.range_text = f"{self.base}-{self.base + size - 1}"
        self._bits = _BandedBitmap(size, port_range_offset(size), rng or random.Random())

    @property
    def static_band(self) -> tuple[int, int] | None:
        if not self._bits.static:
            return None
        return self.base, self.base + self._bits.static - 1

    @property
    def dynamic_band(self) -> tuple[int, int]:
        return self.base + self._bits.static, self.base + self._bits.size - 1

    def _offset(self, port: int) -> int | None:
        offset = port - self.base
        return offset if 0 <= offset < self._bits.size else None

    def allocate(self, port: int) -> int:
        offset = self._offset(port)
        if offset is None:
            raise NotInRangeError("provided port is not in the valid range. "
                                  f"The range of valid ports is {self.range_text}")
        if not self._bits.take(offset):
            raise AlreadyAllocatedError("provided port is already allocated")
        return port

    def allocate_next(self) -> int:
        offset = self._bits.take_next()
        if offset is None:
            raise RangeFullError()
        return self.base + offset

    def release(self, port: int) -> None:
        offset = self._offset(port)
        if offset is not None:
            self._bits.used.discard(offset)

    def has(self, port: int) -> bool:
        offset = self._offset(port)
        return offset is not None and offset in self._bits.used

    def load(self, ports: Iterable[int]) -> None:
        for port in ports:
            offset = self._offset(port)
            if offset is not None:
                self._bits.used.add(offset)

    def used(self) -> list[int]:
        return [self.base + o for o in sorted(self._bits.used)]

    def free(self) -> int:
        return self._bits.size - len(self._bits.used)


IP_KEY_PREFIX = "/registry/ranges/serviceips/"
PORT_KEY_PREFIX = "/registry/ranges/servicenodeports/"


def ip_key(ip: str) -> str:
    return IP_KEY_PREFIX + ip


def port_key(port: int) -> str:
    return f"{PORT_KEY_PREFIX}{port}"


def owner_record(svc: Mapping[str, Any]) -> dict[str, Any]:
    """The value stored under an allocation key: which Service holds it."""
    md = svc.get("metadata") or {}
    return {"metadata": {"name": ""}, "owner": {"namespace": md.get("namespace"), "name": md.get("name"),
                                                "uid": md.get("uid")}}


@dataclass
class Allocation:
    """What one write (create, update or delete) reserves and frees, in memory and in the store.

    ips_added/ports_added are reserved now; their keys are created in the write's transaction (ops()).
    ips_released/ports_released are still held; their keys are deleted in the same transaction and commit()
    frees them in memory. revert() gives back the reservations when the write fails. Both are idempotent;
    a dry-run Allocation reserves nothing, writes nothing and frees nothing. Allocation() is the empty one
    of resources that allocate nothing.
    """

    owner: dict[str, Any] = field(default_factory=dict)
    ips_added: list[str] = field(default_factory=list)
    ports_added: list[int] = field(default_factory=list)
    ips_released: list[str] = field(default_factory=list)
    ports_released: list[int] = field(default_factory=list)
    dry_run: bool = False
    _allocator: ServiceAllocator | None = field(default=None, repr=False)
    _done: bool = field(default=False, repr=False)

    def ops(self) -> list[Op]:
        """Store operations to run in the write's transaction: a key per value taken, none per value freed."""
        if self.dry_run or self._allocator is None:
            return []
        ops = [Op("create", ip_key(ip), self.owner) for ip in sorted(set(self.ips_added) - set(self.ips_released))]
        ops += [Op("create", port_key(p), self.owner)
                for p in sorted(set(self.ports_added) - set(self.ports_released))]
        ops += [Op("delete", ip_key(ip)) for ip in sorted(set(self.ips_released) - set(self.ips_added))]
        ops += [Op("delete", port_key(p)) for p in sorted(set(self.ports_released) - set(self.ports_added))]
        return ops

    def revert(self) -> None:
        if self._done or self._allocator is None:
            return
        self._done = True
        for ip in self.ips_added:
            self._allocator.ips.release(ip)
        for port in self.ports_added:
            self._allocator.ports.release(port)

    def commit(self) -> None:
        if self._done or self._allocator is None or self.dry_run:
            return
        self._done = True
        for ip in self.ips_released:
            self._allocator.ips.release(ip)
        for port in self.ports_released:
            if port not in self.ports_added:
                self._allocator.ports.release(port)

    def reverted_on_error(self) -> _RevertedOnError:
        """Give the reservations back if the block raises (the write is then not attempted)."""
        return _RevertedOnError(self)

    def kept_if_written(self) -> _KeptIfWritten:
        """Around the store write: commit when the block ends normally, revert when it raises."""
        return _KeptIfWritten(self)


# Plain classes rather than @contextmanager generators: every write of every kind enters one of these.
class _RevertedOnError:
    __slots__ = ("allocation",)

    def __init__(self, allocation: Allocation) -> None:
        self.allocation = allocation

    def __enter__(self) -> Allocation:
        return self.allocation

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is not None:
            self.allocation.revert()


class _KeptIfWritten(_RevertedOnError):
    __slots__ = ()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is not None:
            self.allocation.revert()
        else:
            self.allocation.commit()


NO_ALLOCATION = Allocation()  # of kinds that allocate nothing: no ops, revert and commit do nothing


class _PortOperation:
    """portallocator.PortAllocationOperation: reservations now, releases deferred, dry-run simulated."""

    def __init__(self, ports: PortAllocator, allocation: Allocation) -> None:
        self.ports = ports
        self.allocation = allocation
        self._dry: list[int] = []

    def allocate(self, port: int) -> None:
        if self.allocation.dry_run:
            if self.ports.has(port) or port in self._dry:
                raise AlreadyAllocatedError("provided port is already allocated")
            self._dry.append(port)
            return
        self.ports.allocate(port)
        self.allocation.ports_added.append(port)

    def allocate_next(self) -> int:
        if self.allocation.dry_run:
            # Kubernetes hands out placeholder values above the range on dry-run.
            last = max(self._dry) if self._dry else 32768
            self._dry.append(last + 1)
            return last + 1
        port = self.ports.allocate_next()
        self.allocation.ports_added.append(port)
        return port

    def release_deferred(self, port: int) -> None:
        if not self.allocation.dry_run and port not in self.allocation.ports_released:
            self.allocation.ports_released.append(port)


def _service_name(svc: Mapping[str, Any]) -> str:
    return (svc.get("metadata") or {}).get("name") or ""


def _invalid(svc: Mapping[str, Any], errs: list[FieldError]) -> ApiError:
    return invalid_object("", "Service", _service_name(svc), errs)


def _family_of(ip: str) -> str:
    addr = parse_ip_sloppy(ip)
    if addr is None:
        return "unknown"
    return "IPv4" if addr.version == 4 else "IPv6"


class ServiceAllocator:
    """The apiserver's Service allocation for a single-stack cluster, plus the validation that follows it."""

    def __init__(self, service_cidr: str = "10.96.0.0/12", node_port_range: str = "30000-32767",
                 rng: random.Random | None = None) -> None:
        rng = rng or random.Random()
        self.ips = IPAllocator(service_cidr, rng)
        self.ports = PortAllocator(node_port_range, rng)
        self.families: tuple[str, ...] = (self.ips.family,)
        self.primary_family = self.ips.family

    def load(self, used_ips: Iterable[str], used_ports: Iterable[int]) -> None:
        """Mark values already held by stored Services (out-of-range values are ignored)."""
        self.ips.load(used_ips)
        self.ports.load(used_ports)

    # --- the three writes (beginCreate / beginUpdate / afterDelete of the Service REST) -----------------------

    def begin_create(self, svc: dict[str, Any], dry_run: bool = False) -> Allocation:
        """Keep clusterIP/clusterIPs in step, fill the IP-family fields and reserve IPs and node ports (mutates
        svc). Raises ApiError (422 Invalid or 500) after giving back what it reserved."""
        normalize_cluster_ips(svc, None)
        self._init_ip_family_fields(svc, None)
        allocation = Allocation(owner_record(svc), dry_run=dry_run, _allocator=self)
        with allocation.reverted_on_error():
            self._alloc_cluster_ips(svc, allocation)
            op = _PortOperation(self.ports, allocation)
            if service_type(svc) in (NODE_PORT, LOAD_BALANCER):
                self._init_node_ports(svc, op)
            if needs_health_check(svc):
                self._alloc_health_check_port(svc, op)
        return allocation

    def begin_update(self, old: Mapping[str, Any], new: dict[str, Any], dry_run: bool = False) -> Allocation:
        """Carry over allocated values the client omitted, reserve what the update adds and plan to free what it
        drops (mutates new; `old` is the stored object as read, not modified). Raises ApiError after giving back
        what it reserved."""
        patch_allocated_values(new, old)
        normalize_cluster_ips(new, old)
        self._init_ip_family_fields(new, old)
        allocation = Allocation(owner_record(new), dry_run=dry_run, _allocator=self)
        with allocation.reverted_on_error():
            self._update_cluster_ips(new, old, allocation)
            self._update_node_ports(new, old, allocation)
        return allocation

    def begin_delete(self, svc: Mapping[str, Any]) -> Allocation:
        """Everything a deleted Service held, freed when the delete is committed."""
        return Allocation(owner_record(svc), ips_released=held_ips(svc), ports_released=held_ports(svc),
                          _allocator=self)

    # --- IP families (initIPFamilyFields) -------------------------------------------------------------------

    def _init_ip_family_fields(self, svc: dict[str, Any], old: Mapping[str, Any] | None) -> None:
        if service_type(svc) == EXTERNAL_NAME:
            return
        spec = svc["spec"]
        old_spec = spec_of(old) if old is not None else {}
        if spec.get("ipFamilyPolicy") is None:
            if old is not None and old_spec.get("ipFamilyPolicy") is not None:
                spec["ipFamilyPolicy"] = old_spec["ipFamilyPolicy"]
            elif spec.get("clusterIP") == CLUSTER_IP_NONE and not spec.get("selector"):
                spec["ipFamilyPolicy"] = REQUIRE_DUAL_STACK
            else:
                spec["ipFamilyPolicy"] = SINGLE_STACK
        errs = validate_cluster_ips_related_fields(svc)
        if errs:
            raise _invalid(svc, errs)

        policy = spec["ipFamilyPolicy"]
        errs = []
        if old is not None:
            old_ips, old_fams = list(old_spec.get("clusterIPs") or []), list(old_spec.get("ipFamilies") or [])
            ips, fams = list(spec.get("clusterIPs") or []), list(spec.get("ipFamilies") or [])
            if policy == SINGLE_STACK:
                if ips == old_ips and len(ips) > 1:
                    spec["clusterIPs"] = ips[:1]
                if fams == old_fams and len(fams) > 1:
                    spec["ipFamilies"] = fams[:1]
            else:
                if ips and len(ips) < len(old_ips):
                    errs.append(invalid("spec.ipFamilyPolicy", policy,
                                        "must be 'SingleStack' to release the secondary cluster IP"))
                if fams and len(fams) < len(old_fams):
                    errs.append(invalid("spec.ipFamilyPolicy", policy,
                                        "must be 'SingleStack' to release the secondary IP family"))
        if policy == SINGLE_STACK:
            if len(spec.get("clusterIPs") or []) == 2:
                errs.append(invalid("spec.ipFamilyPolicy", policy,
                                    "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified"))
            if len(spec.get("ipFamilies") or []) == 2:
                errs.append(invalid("spec.ipFamilyPolicy", policy,
                                    "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified"))
        ips = list(spec.get("clusterIPs") or [])
        families = list(spec.get("ipFamilies") or [])
        for i, ip in enumerate(ips):
            if ip == CLUSTER_IP_NONE:
                break
            family = _family_of(ip)
            if i >= len(families):
                if family not in self.families:
                    errs.append(invalid(f"spec.clusterIPs[{i}]", ips, f"{family} is not configured on this cluster"))
                else:
                    families.append(family)
        if families:
            spec["ipFamilies"] = families
        if errs:
            raise _invalid(svc, errs)

        if spec.get("clusterIP") == CLUSTER_IP_NONE and not spec.get("selector"):
            if not families:
                families = [self.primary_family]
            if len(families) < 2 and policy != SINGLE_STACK:
                families.append("IPv6" if families[0] == "IPv4" else "IPv4")
            spec["ipFamilies"] = families
            return

        if policy == REQUIRE_DUAL_STACK and len(self.families) < 2:
            errs.append(invalid("spec.ipFamilyPolicy", policy, "this cluster is not configured for dual-stack services"))
        for i, family in enumerate(families):
            if family not in self.families:
                errs.append(invalid(f"spec.ipFamilies[{i}]", family, "not configured on this cluster"))
        if errs:
            raise _invalid(svc, errs)
        if not families:
            families = [self.primary_family]
        spec["ipFamilies"] = families

    # --- cluster IPs -------------------------------------------------------------------------------------------

    def _alloc_cluster_ips(self, svc: dict[str, Any], allocation: Allocation) -> None:
        if service_type(svc) == EXTERNAL_NAME:
            return
        spec = svc["spec"]
        ips = list(spec.get("clusterIPs") or [])
        if ips and ips[0] == CLUSTER_IP_NONE:
            return
        families = list(spec.get("ipFamilies") or [])
        while len(ips) < len(families):
            ips.append("")
        for i, _family in enumerate(families):
            ips[i] = self._alloc_one_ip(svc, ips, ips[i], allocation)
        spec["clusterIPs"] = ips
        if ips:
            spec["clusterIP"] = ips[0]

    def _alloc_one_ip(self, svc: Mapping[str, Any], shown: list[str], wanted: str, allocation: Allocation) -> str:
        try:
            if not wanted:
                if allocation.dry_run:
                    return str(self.ips.network.network_address)
                ip = self.ips.allocate_next()
            elif allocation.dry_run:
                self.ips.check(wanted)
                return wanted
            else:
                self.ips.allocate(wanted)
                ip = wanted
        except RangeFullError as err:
            raise internal(f"failed to allocate a serviceIP: {err}") from None
        except AllocatorError as err:
            raise _invalid(svc, [invalid("spec.clusterIPs", list(shown), f"failed to allocate IP {wanted}: {err}")]) \
                from None
        allocation.ips_added.append(ip)
        return ip

    def _update_cluster_ips(self, new: dict[str, Any], old: Mapping[str, Any], allocation: Allocation) -> None:
        if service_type(old) == EXTERNAL_NAME and service_type(new) != EXTERNAL_NAME:
            self._alloc_cluster_ips(new, allocation)
            return
        old_ips = list(spec_of(old).get("clusterIPs") or [])
        if old_ips and old_ips[0] == CLUSTER_IP_NONE:
            return
        if service_type(old) != EXTERNAL_NAME and service_type(new) == EXTERNAL_NAME:
            allocation.ips_released.extend(ip for ip in old_ips if ip)
            return
        old_fams, new_fams = spec_of(old).get("ipFamilies") or [], new["spec"].get("ipFamilies") or []
        if len(old_fams) == 2 and len(new_fams) == 1 and len(old_ips) > 1:
            allocation.ips_released.append(old_ips[1])

    # --- node ports --------------------------------------------------------------------------------------------

    @staticmethod
    def _port_error(svc: Mapping[str, Any], index: int, value: int, err: AllocatorError) -> ApiError:
        return _invalid(svc, [invalid(f"spec.ports[{index}].nodePort", value, str(err))])

    def _init_node_ports(self, svc: dict[str, Any], op: _PortOperation) -> None:
        ports = ports_of(svc)
        by_service_port: dict[int, int] = {}
        allocate_new = should_allocate_node_ports(svc)
        for i, port in enumerate(ports):
            node_port = as_int(port.get("nodePort"))
            if node_port == 0 and not allocate_new:
                continue
            number = as_int(port.get("port"))
            shared = by_service_port.get(number, 0)
            if shared == 0:
                requested = next((as_int(p.get("nodePort")) for p in ports
                                  if as_int(p.get("port")) == number and as_int(p.get("nodePort"))), 0)
                if requested:
                    try:
                        op.allocate(requested)
                    except AllocatorError as err:
                        raise self._port_error(svc, i, requested, err) from None
                    chosen = requested
                else:
                    try:
                        chosen = op.allocate_next()
                    except RangeFullError as err:
                        raise internal(f"failed to allocate a nodePort: {err}") from None
                port["nodePort"] = chosen
                by_service_port[number] = chosen
            elif node_port != shared:
                if node_port == 0:
                    port["nodePort"] = shared
                else:
                    try:
                        op.allocate(node_port)
                    except AllocatorError as err:
                        raise self._port_error(svc, i, node_port, err) from None

    def _alloc_health_check_port(self, svc: dict[str, Any], op: _PortOperation) -> None:
        spec = svc["spec"]
        wanted = as_int(spec.get("healthCheckNodePort"))
        if wanted:
            try:
                op.allocate(wanted)
            except AllocatorError as err:
                raise internal(f"failed to allocate requested HealthCheck NodePort {wanted}: {err}") from None
        else:
            try:
                spec["healthCheckNodePort"] = op.allocate_next()
            except RangeFullError as err:
                raise internal(f"failed to allocate a HealthCheck NodePort 0: {err}") from None

    def _update_node_ports(self, new: dict[str, Any], old: Mapping[str, Any], allocation: Allocation) -> None:
        op = _PortOperation(self.ports, allocation)
        old_numbers = [as_int(p.get("nodePort")) for p in ports_of(old) if as_int(p.get("nodePort"))]
        if service_type(old) in (NODE_PORT, LOAD_BALANCER) and service_type(new) in (EXTERNAL_NAME, "ClusterIP"):
            for number in old_numbers:
                op.release_deferred(number)
        if service_type(new) in (NODE_PORT, LOAD_BALANCER):
            allocate_new = should_allocate_node_ports(new)
            claimed: set[int] = set()
            seen: set[tuple[str, int]] = set()
            for i, port in enumerate(ports_of(new)):
                node_port = as_int(port.get("nodePort"))
                if node_port == 0 and not allocate_new:
                    continue
                if node_port:
                    if node_port not in old_numbers and node_port not in claimed:
                        try:
                            op.allocate(node_port)
                        except AllocatorError as err:
                            raise self._port_error(new, i, node_port, err) from None
                        claimed.add(node_port)
                else:
                    try:
                        node_port = op.allocate_next()
                    except RangeFullError as err:
                        raise internal(f"failed to allocate a nodePort: {err}") from None
                    port["nodePort"] = node_port
                key = (port.get("protocol") or "", node_port)
                if key in seen:
                    # kube-apiserver reaches a plain error (a bare 500) here before validation runs; say what
                    # ValidateService says about it instead
                    raise _invalid(new, [FieldError("FieldValueDuplicate", f"spec.ports[{i}].nodePort", node_port)])
                seen.add(key)
            new_numbers = {as_int(p.get("nodePort")) for p in ports_of(new)}
            for number in old_numbers:
                if number not in new_numbers:
                    op.release_deferred(number)
        needed, needs = needs_health_check(old), needs_health_check(new)
        if not needed and needs:
            self._alloc_health_check_port(new, op)
        elif needed and not needs:
            op.release_deferred(as_int(spec_of(old).get("healthCheckNodePort")))
