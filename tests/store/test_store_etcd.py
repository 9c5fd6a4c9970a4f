"""What only the etcd store does: kube-apiserver's key layout seen with etcdctl, JSON values without
resourceVersion, one revision per txn, and a txn's failure naming the key that failed."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess

import orjson
import pytest
from tests.etcd_cluster import EtcdCluster

from nanokube.api.served_resources import by_kind
from nanokube.apiserver.crds import CustomResource
from nanokube.store import KeyExists, Op, RevisionConflict
from nanokube.store.etcd import EtcdStore, encode, stamp_stored
from nanokube.store.etcd_gateway import EtcdGateway

SERVICES = by_kind("", "Service")
PODS = by_kind("", "Pod")
NODES = by_kind("", "Node")


@pytest.fixture
async def etcd_store(etcd: EtcdCluster):  # type: ignore[no-untyped-def]
    store = EtcdStore(EtcdGateway(etcd.endpoints.split(",")))
    await store.start()
    yield store
    await store.close()


def etcdctl(etcd: EtcdCluster, *args: str) -> str:
    if shutil.which("etcdctl") is None:
        pytest.skip("etcdctl (Debian's etcd-client) is not installed")
    return subprocess.run(["etcdctl", "--endpoints", etcd.endpoints, *args], capture_output=True, text=True,
                          check=True, env={**os.environ, "ETCDCTL_API": "3"}).stdout


def test_keys_are_laid_out_as_kube_apiserver_lays_them() -> None:
    assert SERVICES.key("default", "kubernetes") == "/registry/services/specs/default/kubernetes"
    assert by_kind("", "Endpoints").key("default", "kubernetes") == "/registry/services/endpoints/default/kubernetes"
    assert PODS.key("default", "web-0") == "/registry/pods/default/web-0"
    assert NODES.key(None, "n1") == "/registry/minions/n1"
    assert by_kind("apps", "Deployment").key_prefix("ns") == "/registry/deployments/ns/"
    assert by_kind("coordination.k8s.io", "Lease").key("kube-system", "x") == "/registry/leases/kube-system/x"
    # custom resources keep their group (apiextensions' ResourcePrefix): a CRD named like a built-in never
    # shares its keys
    crd = CustomResource("example.com", "v1", "Pod", "pods", True)
    assert crd.key("ns", "a") == "/registry/example.com/pods/ns/a"
    assert crd.key_prefix() == "/registry/example.com/pods/"


async def test_etcdctl_shows_the_objects_as_json(etcd: EtcdCluster, etcd_store: EtcdStore) -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "etcdctl-ns",
                                                               "resourceVersion": "999"},
           "spec": {"clusterIP": "10.96.0.7"}}
    created = await etcd_store.create(SERVICES.key("etcdctl-ns", "web"), svc)
    out = etcdctl(etcd, "get", "--prefix", "/registry/services/specs/etcdctl-ns/").splitlines()
    assert out[0] == "/registry/services/specs/etcdctl-ns/web"
    stored = json.loads(out[1])
    assert stored["spec"] == {"clusterIP": "10.96.0.7"}
    assert "resourceVersion" not in stored["metadata"]  # etcd's mod_revision is the version
    assert orjson.loads(created.value)["metadata"]["resourceVersion"] == str(created.revision)


async def test_a_txn_is_one_revision_and_a_failure_names_its_key(etcd_store: EtcdStore) -> None:
    taken = await etcd_store.create("/registry/ranges/serviceips/10.0.0.5", {"metadata": {"name": ""}})
    with pytest.raises(KeyExists) as exists:
        await etcd_store.txn([Op("create", "/registry/services/specs/t/a", {"metadata": {"name": "a"}}),
                              Op("create", "/registry/ranges/serviceips/10.0.0.5", {"metadata": {"name": ""}})])
    assert exists.value.key == "/registry/ranges/serviceips/10.0.0.5"
    assert await etcd_store.get("/registry/services/specs/t/a") is None
    with pytest.raises(RevisionConflict) as conflict:
        await etcd_store.delete("/registry/ranges/serviceips/10.0.0.5", taken.revision + 100)
    assert conflict.value.current == taken.revision
    done = await etcd_store.txn([Op("create", "/registry/services/specs/t/a", {"metadata": {"name": "a"}}),
                                 Op("delete", "/registry/ranges/serviceips/10.0.0.5", None, taken.revision)])
    assert done[0].revision == done[1].revision == etcd_store.current_revision


def test_stamping_splices_the_revision_without_parsing() -> None:
    value = encode({"kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "5"}, "data": {"k": "v"}})
    assert value.startswith(b'{"metadata":{"name":"a"}')
    assert orjson.loads(stamp_stored(value, 42)) == {"kind": "ConfigMap", "data": {"k": "v"},
                                                     "metadata": {"resourceVersion": "42", "name": "a"}}
    assert orjson.loads(stamp_stored(encode({"kind": "X"}), 7)) == {"kind": "X", "metadata": {"resourceVersion": "7"}}
    # written by someone else (etcdctl put): parsed instead
    assert orjson.loads(stamp_stored(b'{"kind":"X","metadata":{"name":"b"}}', 3))["metadata"] == \
        {"name": "b", "resourceVersion": "3"}


async def test_one_of_two_servers_compacts_a_round(etcd: EtcdCluster, etcd_store: EtcdStore) -> None:
    other = EtcdStore(EtcdGateway(etcd.endpoints.split(",")))
    await other.start()
    try:
        for i in range(5):
            await etcd_store.create(f"/registry/configmaps/compact/{i}", {"metadata": {"name": str(i)}})
        target = etcd_store.current_revision
        async with asyncio.timeout(10):  # the other server has seen those writes through its store watch
            while other.current_revision < target:
                await asyncio.sleep(0.01)
        before = (await etcd_store.gateway.range(b"compact_rev_key"))[0]
        await asyncio.gather(etcd_store.compact(target), other.compact(target))
        after = (await etcd_store.gateway.range(b"compact_rev_key"))[0]
        # kube-apiserver's compactor CAS: the version of compact_rev_key moved by exactly one
        assert after[0].version == (before[0].version if before else 0) + 1
        assert int(after[0].value) == target
        assert {etcd_store.compact_revision, other.compact_revision} == {target}
    finally:
        await other.close()
