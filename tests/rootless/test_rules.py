"""The pure rules of rootless mode and the privileged-port reporting (no root, no user needed)."""

from __future__ import annotations

import errno
import os

import pytest

from nanokube.agent.envvars import ContainerConfigError
from nanokube.agent.user_ids import is_mapped, refuse_unmapped_ids
from nanokube.api.address_plan import AddressPlan
from nanokube.api.privileged_ports import PRIVILEGED_PORT_ERROR, listen_error
from nanokube.rootless.forwarder import lb_host_port, service_forwards
from nanokube.settings import SettingsError, resolve_network


def test_lb_ports_below_1024_move_up_by_10000():
    assert lb_host_port(80) == 10080
    assert lb_host_port(1024) == 1024
    assert lb_host_port(3306) == 3306


def test_service_forwards_node_ports_and_lb_ports_not_cluster_ips():
    svc = {"metadata": {"name": "web"},
           "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"},
                                                      {"port": 53, "nodePort": 31001, "protocol": "UDP"},
                                                      {"port": 9, "protocol": "SCTP"}]},
           "status": {"loadBalancer": {"ingress": [{"ip": "10.250.0.1"}]}}}
    assert service_forwards(svc, "10.244.0.1") == {
        ("tcp", 31000): ("10.244.0.1", 31000), ("tcp", 10080): ("10.250.0.1", 80),
        ("udp", 31001): ("10.244.0.1", 31001), ("udp", 10053): ("10.250.0.1", 53)}
    assert service_forwards({"metadata": {}, "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}, "x") == {}


def test_rootless_uses_the_netns_plan():
    plan = AddressPlan.of("rootless")
    assert (plan.node_network, plan.proxy_mode, plan.kube_dns_ip) == ("netns", "nftables", "10.96.0.10")
    assert AddressPlan.of("loopback").kube_dns_ip == "127.96.0.10"
    assert AddressPlan.of("loopback", service_cidr="127.150.0.0/16").kubernetes_ip == "127.150.0.1"


def test_eacces_is_a_privileged_port_not_a_taken_one():
    assert listen_error(OSError(errno.EACCES, "Permission denied")) == PRIVILEGED_PORT_ERROR
    assert listen_error(OSError(errno.EADDRINUSE, "Address already in use")) == "Address already in use"


def test_mapped_ranges():
    assert is_mapped(5, [(0, 1), (1, 10)]) and not is_mapped(11, [(0, 1), (1, 10)])
    refuse_unmapped_ids({"spec": {"securityContext": {"runAsUser": 0}}}, {})  # root: always mapped


def test_run_as_an_unmapped_id_is_refused(monkeypatch):
    monkeypatch.setattr("nanokube.agent.user_ids.mapped_ranges", lambda kind="uid": [(0, 1)])
    with pytest.raises(ContainerConfigError, match="runAsUser 1000: this rootless node has one uid"):
        refuse_unmapped_ids({"spec": {"securityContext": {"runAsUser": 1000}}}, {})


@pytest.mark.skipif(os.geteuid() != 0, reason="as root")
def test_rootless_is_for_users():
    with pytest.raises(SettingsError, match="as root use --network netns"):
        resolve_network("rootless")
    with pytest.raises(SettingsError, match="auto, netns, rootless or loopback"):
        resolve_network("bogus")
