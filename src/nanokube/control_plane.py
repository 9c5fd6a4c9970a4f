"""Settings of a control plane that outgrows one process: the datastore (`--datastore-endpoint`, k3s's flags),
several API servers (`--advertise-address`, `--tls-san`) and leader election (kube-controller-manager's
`--leader-elect*` flags). With none of these flags `nanokube server` is one process on its SQLite store, and
nothing here imports the etcd store."""

from __future__ import annotations

import argparse
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@dataclass
class LeaderElection:
    """client-go's defaults (component-base config v1alpha1): 15 s / 10 s / 2 s."""

    enabled: bool = False
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    namespace: str = "kube-system"
    name: str = "kube-controller-manager"


@dataclass
class ControlPlane:
    datastore_endpoints: list[str] = field(default_factory=list)
    datastore_cafile: str | None = None
    datastore_certfile: str | None = None
    datastore_keyfile: str | None = None
    datastore_prefix: str = ""
    advertise_address: str = ""
    tls_sans: list[str] = field(default_factory=list)
    apiserver_lease_duration: float = 15.0  # kube-apiserver's DefaultEndpointReconcilerTTL
    leader_election: LeaderElection = field(default_factory=LeaderElection)

    def san_addresses(self) -> tuple[list[str], list[str]]:
        """(IP addresses, DNS names) of --tls-san and --advertise-address for the serving certificate."""
        ips: list[str] = []
        names: list[str] = []
        for value in [*self.tls_sans, *([self.advertise_address] if self.advertise_address else [])]:
            try:
                ips.append(str(ipaddress.ip_address(value)))
            except ValueError:
                names.append(value)
        return ips, names

    @property
    def shared_store(self) -> bool:
        """Several API servers may share the store (etcd): leases, shared CA, allocation sync."""
        return bool(self.datastore_endpoints)


def _duration(text: str) -> float:
    """Seconds from `15`, `15s`, `1.5s`, `500ms` or `1m` (Go durations as the kube flags take them)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}")
    value = float(match.group(1))
    return value / 1000 if match.group(2) == "ms" else value * 60 if match.group(2) == "m" else value


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r}")


def add_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--datastore-endpoint", default="",
                   help="etcd v3 endpoints, comma-separated (http(s)://host:2379,...); default: the embedded SQLite")
    p.add_argument("--datastore-cafile", default=None, help="CA bundle to verify the etcd members")
    p.add_argument("--datastore-certfile", default=None, help="client certificate for etcd")
    p.add_argument("--datastore-keyfile", default=None, help="client key for etcd")
    p.add_argument("--datastore-prefix", default="",
                   help="key root before /registry, so several clusters can share one etcd (default none)")
    p.add_argument("--advertise-address", default="",
                   help="address this API server puts in the `kubernetes` Service's endpoints (default: its listen "
                   "address)")
    p.add_argument("--tls-san", action="append", default=None,
                   help="extra address or DNS name for the serving certificate (repeatable)")
    p.add_argument("--leader-elect", type=_bool, nargs="?", const=True, default=None,
                   help="run controllers and scheduler only while holding the kube-system/kube-controller-manager "
                   "Lease (default: on with --datastore-endpoint)")
    p.add_argument("--leader-elect-lease-duration", type=_duration, default=15.0,
                   help="how long a leader's Lease holds without renewal (default 15s)")
    p.add_argument("--leader-elect-renew-deadline", type=_duration, default=10.0,
                   help="a leader that cannot renew for this long stops leading (default 10s)")
    p.add_argument("--leader-elect-retry-period", type=_duration, default=2.0,
                   help="interval between acquire/renew attempts (default 2s)")
    p.add_argument("--apiserver-lease-duration", type=_duration, default=15.0,
                   help="an API server missing from the `kubernetes` endpoints this long after its last renewal is "
                   "dropped (default 15s; renewed every 2/3 of it)")


def from_args(args: Any) -> ControlPlane:
    from nanokube.settings import SettingsError

    endpoints = [e.strip() for e in (args.datastore_endpoint or "").split(",") if e.strip()]
    for endpoint in endpoints:
        url = urlsplit(endpoint)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise SettingsError(f"--datastore-endpoint: {endpoint!r} is not an etcd URL (http(s)://host:port); "
                                "only etcd is supported besides the embedded SQLite")
    for flag in ("datastore_cafile", "datastore_certfile", "datastore_keyfile"):
        value = getattr(args, flag)
        if value and not Path(value).is_file():
            raise SettingsError(f"--{flag.replace('_', '-')}: {value}: no such file")
    elected = LeaderElection(
        enabled=bool(endpoints) if args.leader_elect is None else args.leader_elect,
        lease_duration=args.leader_elect_lease_duration, renew_deadline=args.leader_elect_renew_deadline,
        retry_period=args.leader_elect_retry_period)
    # client-go's own check (NewLeaderElector): leaseDuration > renewDeadline > JitterFactor(1.2) * retryPeriod
    if not elected.lease_duration > elected.renew_deadline > 1.2 * elected.retry_period:
        raise SettingsError("--leader-elect-lease-duration must be greater than --leader-elect-renew-deadline, "
                            "which must be greater than 1.2 x --leader-elect-retry-period")
    prefix = args.datastore_prefix.rstrip("/")
    if prefix and not prefix.startswith("/"):
        raise SettingsError("--datastore-prefix: must start with /")
    return ControlPlane(datastore_endpoints=endpoints, datastore_cafile=args.datastore_cafile,
                        datastore_certfile=args.datastore_certfile, datastore_keyfile=args.datastore_keyfile,
                        datastore_prefix=prefix, advertise_address=args.advertise_address,
                        tls_sans=list(args.tls_san or []), apiserver_lease_duration=args.apiserver_lease_duration,
                        leader_election=elected)
