import base64

import pytest

from nanokube.agent.envvars import ContainerConfigError, build_env, service_env
from nanokube.agent.expand import expand, lookup_in


def test_expand_follows_kubelet_rules():
    env = lookup_in({"A": "x", "B": "y"})
    assert expand("$(A)-$(B)", env) == "x-y"
    assert expand("$$(A)", env) == "$(A)"
    assert expand("$(MISSING)", env) == "$(MISSING)"
    assert expand("$(A", env) == "$(A"
    assert expand("a$b$", env) == "a$b$"
    assert expand("$$$(A)", env) == "$x"


def svc(name, ns, ip, ports):
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": ip, "ports": ports}}


def test_service_env_matches_kubernetes():
    services = [
        svc("kubernetes", "default", "10.96.0.1", [{"name": "https", "port": 443, "protocol": "TCP"}]),
        svc("redis-primary", "app", "10.96.0.20", [{"port": 6379}]),
        svc("headless", "app", "None", [{"port": 80}]),
        svc("other", "elsewhere", "10.96.0.30", [{"port": 80}]),
        svc("dns", "app", "fd00::10", [{"name": "dns-udp", "port": 53, "protocol": "UDP"},
                                       {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]),
    ]
    env = service_env(services, "app")
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["KUBERNETES_PORT"] == "tcp://10.96.0.1:443"
    assert env["KUBERNETES_PORT_443_TCP_ADDR"] == "10.96.0.1"
    assert env["REDIS_PRIMARY_SERVICE_PORT"] == "6379"
    assert env["REDIS_PRIMARY_PORT_6379_TCP_PROTO"] == "tcp"
    assert env["DNS_PORT"] == "udp://[fd00::10]:53"
    assert env["DNS_PORT_53_TCP"] == "tcp://[fd00::10]:53"
    assert env["DNS_SERVICE_PORT_DNS_TCP"] == "53"
    assert not any(k.startswith(("HEADLESS_", "OTHER_")) for k in env)
    no_links = service_env(services, "app", enable_service_links=False)
    assert set(k.split("_")[0] for k in no_links) == {"KUBERNETES"}


def _pod():
    return {"metadata": {"name": "p", "namespace": "app", "uid": "u-1", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "serviceAccountName": "default", "containers": []}}


async def test_build_env_sources_and_precedence():
    secrets = {("app", "db"): {"data": {"password": base64.b64encode(b"s3cret").decode()}}}
    cms = {("app", "cfg"): {"data": {"MODE": "prod", "LEVEL": "3"}}}

    async def get_secret(ns, name):
        return secrets.get((ns, name))

    async def get_cm(ns, name):
        return cms.get((ns, name))

    container = {"name": "c", "resources": {"limits": {"memory": "128Mi", "cpu": "250m"}},
                 "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
                 "env": [
                     {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                     {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                     {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                     {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                     {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                                         "divisor": "1Mi"}}},
                     {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                     {"name": "URL", "value": "http://$(REDIS_SERVICE_HOST):$(CFG_LEVEL)/$(NAME)"},
                     {"name": "REDIS_SERVICE_PORT", "value": "override"},
                 ]}
    env = await build_env(_pod(), container, services_env={"REDIS_SERVICE_HOST": "10.0.0.5",
                                                            "REDIS_SERVICE_PORT": "6379"},
                          get_secret=get_secret, get_configmap=get_cm, pod_ip="10.244.0.9", host_ip="10.0.0.1")
    assert env["PW"] == "s3cret"
    assert env["NAME"] == "p" and env["APP"] == "web" and env["IP"] == "10.244.0.9"
    assert env["MEM"] == "128" and env["CPU"] == "1"
    assert env["CFG_MODE"] == "prod"
    assert env["URL"] == "http://10.0.0.5:3/p"
    assert env["REDIS_SERVICE_PORT"] == "override"


async def test_missing_secret_or_key_names_it_never_the_value():
    secret = {"data": {"password": base64.b64encode(b"topsecretvalue").decode()}}

    async def get_secret(ns, name):
        return secret if name == "db" else None

    async def get_cm(ns, name):
        return None

    async def attempt(ref):
        container = {"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": ref}}]}
        with pytest.raises(ContainerConfigError) as info:
            await build_env(_pod(), container, services_env={}, get_secret=get_secret, get_configmap=get_cm,
                            pod_ip="", host_ip="")
        return str(info.value)

    assert await attempt({"name": "nope", "key": "password"}) == 'secret "nope" not found'
    msg = await attempt({"name": "db", "key": "user"})
    assert msg == "couldn't find key user in Secret app/db"
    assert "topsecretvalue" not in msg
    container = {"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {
        "name": "nope", "key": "k", "optional": True}}}]}
    env = await build_env(_pod(), container, services_env={}, get_secret=get_secret, get_configmap=get_cm,
                          pod_ip="", host_ip="")
    assert "X" not in env
