"""Routes and the rendered nginx config, without a cluster: Kubernetes' host and path matching rules, and a
config nginx itself accepts (`nginx -t`)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from nanokube.ingress.classes import default_ingress_class, is_ours
from nanokube.ingress.nginxconf import Listen, render
from nanokube.ingress.routes import BackendResolver, build_hosts, host_matches, match, prefix_matches


def test_prefix_is_element_wise() -> None:
    assert prefix_matches("/api", "/api") and prefix_matches("/api/", "/api") and prefix_matches("/api", "/api/x")
    assert not prefix_matches("/api", "/apix") and prefix_matches("/", "/anything")


def test_wildcard_host_covers_one_label() -> None:
    assert host_matches("*.example.test", "a.example.test")
    assert not host_matches("*.example.test", "a.b.example.test") and not host_matches("*.example.test",
                                                                                         "example.test")


def svc(name: str) -> dict:
    return {"metadata": {"name": name, "namespace": "ns"},
            "spec": {"ports": [{"name": "web", "port": 80, "targetPort": 8080}]}}


def eps(name: str, *ips: str, ready: bool = True) -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "web", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip in ips]}


def ing(name: str, spec: dict, ts: str = "2026-01-01T00:00:00Z") -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "creationTimestamp": ts}, "spec": spec}


def path(p: str, service: str, kind: str = "Prefix") -> dict:
    return {"path": p, "pathType": kind, "backend": {"service": {"name": service, "port": {"name": "web"}}}}


def hosts():  # type: ignore[no-untyped-def]
    resolver = BackendResolver({"ns/a": svc("a"), "ns/b": svc("b")},
                               {"ns/a": [eps("a", "127.1.0.1", "127.1.0.2")], "ns/b": [eps("b", "127.1.0.3")]})
    return build_hosts([
        ing("one", {"rules": [{"host": "x.test", "http": {"paths": [path("/", "a"), path("/api/", "b"),
                                                                       path("/api", "a", "Exact")]}},
                              {"host": "*.w.test", "http": {"paths": [path("/", "b")]}}]}),
        ing("late", {"rules": [{"host": "x.test", "http": {"paths": [path("/", "b"), path("/gone", "missing")]}}]},
            ts="2026-02-01T00:00:00Z"),
    ], resolver)


def test_match_exact_longest_prefix_and_oldest_ingress() -> None:
    hs = hosts()
    assert match(hs, "x.test", "/api")[1].backend.service == "ns/a"  # Exact beats the Prefix on the same path
    assert match(hs, "x.test", "/api/v1")[1].backend.service == "ns/b"
    assert match(hs, "x.test", "/apix")[1].backend.service == "ns/a"  # falls to "/", the older Ingress's
    assert match(hs, "q.w.test", "/")[1].backend.servers == ["127.1.0.3:8080"]
    assert match(hs, "q.r.w.test", "/")[1] is None
    gone = match(hs, "x.test", "/gone")[1]
    assert gone.backend.problem == "service ns/missing not found"


def test_only_ready_endpoints_become_servers() -> None:
    resolver = BackendResolver({"ns/a": svc("a")}, {"ns/a": [eps("a", "127.1.0.1"), eps("a", "127.1.0.9",
                                                                                             ready=False)]})
    backend = resolver.resolve("ns", {"service": {"name": "a", "port": {"number": 80}}})
    assert backend is not None and backend.servers == ["127.1.0.1:8080"]


def test_class_rules() -> None:
    classes = [default_ingress_class()]
    assert is_ours(ing("i", {}), classes)
    assert is_ours(ing("i", {"ingressClassName": "nanokube"}), classes)
    assert not is_ours(ing("i", {"ingressClassName": "other"}), classes)
    assert not is_ours(ing("i", {}), [])


@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx not installed")
def test_nginx_accepts_the_rendered_config(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
        (tmp_path / sub).mkdir(parents=True)
    conf = tmp_path / "nginx.conf"
    conf.write_text(render(hosts(), Listen("127.0.0.1", 18080, 18443), tmp_path))
    proc = subprocess.run(["nginx", "-t", "-q", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"),
                           "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
