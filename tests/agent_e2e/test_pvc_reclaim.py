"""local-path volumes: data written by a pod stays with the claim; deleting the claim removes the directory
under reclaimPolicy Delete and keeps it (PV Released) under Retain."""

from __future__ import annotations

from pathlib import Path

from tests.agent_e2e.conftest import kubectl_json, loopback_args, table
from tests.polling import eventually


def claim(name: str, storage_class: str | None = None) -> dict:
    spec: dict = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}


def bound_volume(srv, name: str) -> tuple[str, Path]:
    def volume() -> str | None:
        pvc = kubectl_json(srv, "get", "pvc", name)
        return pvc["spec"].get("volumeName") if (pvc.get("status") or {}).get("phase") == "Bound" else None

    pv_name = eventually(volume, 15, what=f"{name} Bound")
    return pv_name, Path(kubectl_json(srv, "get", "pv", pv_name)["spec"]["hostPath"]["path"])


def pv_names(srv) -> set[str]:
    return {pv["metadata"]["name"] for pv in kubectl_json(srv, "get", "pv")["items"]}


def test_reclaim_delete_removes_the_directory_and_retain_keeps_it(make_server):
    srv = make_server(*loopback_args())
    srv.apply({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "local-retain"},
               "provisioner": "nanokube.io/local-path", "reclaimPolicy": "Retain",
               "volumeBindingMode": "Immediate"})
    for item in (claim("scratch"), claim("keep-patched"), claim("keep-class", "local-retain")):
        srv.apply(item)
    volumes = {name: bound_volume(srv, name) for name in ("scratch", "keep-patched", "keep-class")}
    assert all(path.is_dir() and path.parent == srv.data_dir / "storage" for _, path in volumes.values())
    # a pod writes into the claim; the file outlives the pod
    srv.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "writer"}, "spec": {
        "restartPolicy": "Never", "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "scratch"}}],
        "containers": [{"name": "w", "image": "busybox", "volumeMounts": [{"name": "d", "mountPath": "/data"}],
                        "command": ["python3", "-c", "import json, os; root = json.loads(os.environ["
                                    "'NANOKUBE_MOUNTS'])['/data']; open(root + '/note', 'w').write('kept')"]}]}})
    eventually(lambda: kubectl_json(srv, "get", "pod", "writer")["status"].get("phase") == "Succeeded", 15,
               what="writer Succeeded")
    srv.kubectl("delete", "pod", "writer")
    assert (volumes["scratch"][1] / "note").read_text() == "kept"

    rows = {r["NAME"]: r for r in table(srv.kubectl("get", "pv").stdout)}
    assert rows[volumes["keep-class"][0]]["RECLAIM POLICY"] == "Retain"
    assert rows[volumes["scratch"][0]]["RECLAIM POLICY"] == "Delete"
    srv.kubectl("patch", "pv", volumes["keep-patched"][0], "-p", '{"spec":{"persistentVolumeReclaimPolicy":"Retain"}}')
    srv.kubectl("delete", "pvc", "scratch", "keep-patched", "keep-class")

    eventually(lambda: volumes["scratch"][0] not in pv_names(srv), 15, what="the Delete PV removed")
    assert not volumes["scratch"][1].exists()
    for name in ("keep-patched", "keep-class"):
        pv_name, path = volumes[name]
        eventually(lambda pv_name=pv_name: kubectl_json(srv, "get", "pv", pv_name)["status"].get("phase")
                   == "Released", 15, what=f"{pv_name} Released")
        assert path.is_dir()
    assert not kubectl_json(srv, "get", "pvc")["items"]
