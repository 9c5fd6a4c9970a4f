from pathlib import Path

import pytest

from nanokube.agent.backoff import Backoff, go_duration
from nanokube.agent.etcfiles import hosts_file, resolv_conf
from nanokube.agent.ipam import Ipam
from nanokube.images.catalogue import Catalogue, ImageNotFound, normalize_image


def test_backoff_doubles_to_the_cap_and_resets():
    b = Backoff(base=10, cap=300)
    assert b.remaining(finished_at=0, now=0) == 0  # first crash: restart at once
    b.restarted(now=0)
    assert b.remaining(finished_at=1, now=2) == 9
    delays = []
    for i in range(7):
        b.restarted(now=10 + i)
        delays.append(b.delay)
    assert delays == [20, 40, 80, 160, 300, 300, 300]
    b.restarted(now=10_000)  # long quiet period: starts over
    assert b.delay == 10
    assert [go_duration(x) for x in (10, 80, 160, 300, 0.5)] == ["10s", "1m20s", "2m40s", "5m0s", "500ms"]


def test_ipam_skips_network_and_gateway():
    ipam = Ipam("10.244.3.0/30")
    assert ipam.allocate("a") == "10.244.3.2"
    assert ipam.allocate("a") == "10.244.3.2"
    with pytest.raises(Exception, match="no free pod IP"):
        ipam.allocate("b")
    ipam.release("10.244.3.2")
    assert ipam.allocate("b") == "10.244.3.2"


def test_ipam_gives_back_a_pods_earlier_ip_when_free():
    ipam = Ipam("10.244.3.0/24")
    assert ipam.allocate("a", prefer="10.244.3.7") == "10.244.3.7"
    assert ipam.allocate("b", prefer="10.244.3.7") == "10.244.3.2"  # taken: the next free one instead
    for outside in ("10.244.4.9", "10.244.3.1", "10.244.3.0", "10.244.3.255", "junk"):
        assert ipam.allocate(outside, prefer=outside) != outside


def test_image_names_and_catalogue(tmp_path: Path):
    assert normalize_image("docker.io/library/nginx:1.25") == "nginx"
    assert normalize_image("mariadb:10.11@sha256:abc") == "mariadb"
    assert normalize_image("localhost:5000/team/app:v1") == "localhost:5000/team/app"
    cat = Catalogue([tmp_path])
    echo = cat.command_for("nanokube/echo:latest", None, ["--http-port", "9000"],
                           {"pod_name": "p", "pod_namespace": "ns", "pod_ip": "1.2.3.4"})
    assert echo.argv[-2:] == ["--http-port", "9000"] and echo.argv[-3].endswith("echo.py")
    assert echo.env["NANOKUBE_POD_NAME"] == "p"
    maria = cat.command_for("mysql:8", None, None, {})
    assert maria.argv[-1] == "mariadbd"
    shell = cat.command_for("busybox", ["sh", "-c", "echo hi"], None, {})
    assert shell.argv == ["sh", "-c", "echo hi"]
    with pytest.raises(ImageNotFound) as info:
        cat.command_for("example.com/unknown:1", None, None, {})
    assert str(tmp_path) in str(info.value) and "example.com/unknown:1" in str(info.value)
    # a user entry is picked up without restarting and wins over a shipped one
    (tmp_path / "mine.yaml").write_text("name: busybox\npatterns: [busybox]\ncmd: [echo, mine]\n")
    assert cat.command_for("busybox", None, None, {}).argv == ["echo", "mine"]
    (tmp_path / "app.yaml").write_text("name: app\npatterns: ['example.com/*']\nentrypoint: [sleep]\ncmd: ['1']\n")
    assert cat.command_for("example.com/unknown:1", None, ["5"], {}).argv == ["sleep", "5"]


def test_hosts_and_resolv_conf(tmp_path: Path):
    pod = {"metadata": {"name": "web-0", "namespace": "shop"},
           "spec": {"hostname": "web-0", "subdomain": "web", "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["a"]}]}}
    hosts = hosts_file(pod, "10.244.0.7", "cluster.local")
    assert "10.244.0.7\tweb-0.web.shop.svc.cluster.local\tweb-0" in hosts
    assert "1.2.3.4\ta" in hosts
    host_resolv = tmp_path / "resolv.conf"
    host_resolv.write_text("nameserver 192.0.2.53\nsearch corp.example\n")
    text = resolv_conf(pod, "10.96.0.10", "cluster.local", host_resolv)
    assert text == ("search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
                    "nameserver 10.96.0.10\noptions ndots:5\n")
    pod["spec"]["dnsPolicy"] = "Default"
    assert resolv_conf(pod, "10.96.0.10", "cluster.local", host_resolv) == \
        "search corp.example\nnameserver 192.0.2.53\n"
    pod["spec"]["dnsPolicy"] = "None"
    pod["spec"]["dnsConfig"] = {"nameservers": ["1.1.1.1"], "searches": ["x.y"], "options": [{"name": "ndots",
                                                                                              "value": "2"}]}
    assert resolv_conf(pod, "10.96.0.10", "cluster.local", host_resolv) == \
        "search x.y\nnameserver 1.1.1.1\noptions ndots:2\n"
