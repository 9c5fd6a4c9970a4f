"""The real kubectl against a real server: the article's manifests and everyday commands."""

from __future__ import annotations

import os
import re
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

ARTICLE = Path(__file__).resolve().parents[2] / "examples" / "article"
MANIFESTS = ["mariadb-pvc.yaml", "mariadb-secret.yaml", "mariadb-deployment.yaml", "mariadb-service.yaml",
             "svc-nodeport-mariadb.yml", "svc-mariadb-loadbalancer.yml", "training-aurora-svc.yml",
             "headless-svc.yaml"]
KINDS = {"mariadb-pvc.yaml": "persistentvolumeclaim/mariadb-pvc", "mariadb-secret.yaml": "secret/mariadb-secret",
         "mariadb-deployment.yaml": "deployment.apps/mariadb-deployment",
         "mariadb-service.yaml": "service/mariadb-service", "svc-nodeport-mariadb.yml": "service/svc-nodeport-mariadb",
         "svc-mariadb-loadbalancer.yml": "service/svc-mariadb-loadbalancer",
         "training-aurora-svc.yml": "service/training-aurora-svc", "headless-svc.yaml": "service/headless-svc"}


@pytest.fixture(scope="module")
def applied(api_server):
    for name in MANIFESTS:
        out = api_server.kubectl("apply", "-f", str(ARTICLE / name)).stdout.strip()
        assert out == f"{KINDS[name]} created"
    return api_server


def test_apply_again_is_unchanged(applied):
    for name in MANIFESTS:
        out = applied.kubectl("apply", "-f", str(ARTICLE / name)).stdout.strip()
        assert out == f"{KINDS[name]} unchanged"


def test_get_svc_columns_like_the_article(applied):
    out = applied.kubectl("get", "svc").stdout
    lines = out.splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    rows = {re.split(r"\s{2,}", line.strip())[0]: re.split(r"\s{2,}", line.strip()) for line in lines[1:]}
    assert rows["kubernetes"][1:3] == ["ClusterIP", "127.96.0.1"]
    assert rows["kubernetes"][4] == "443/TCP"
    assert rows["mariadb-service"][1] == "ClusterIP" and rows["mariadb-service"][3] == "<none>"
    assert rows["mariadb-service"][4] == "3306/TCP"
    assert rows["svc-nodeport-mariadb"][1] == "NodePort" and rows["svc-nodeport-mariadb"][4] == "3306:31111/TCP"
    assert rows["svc-mariadb-loadbalancer"][1] == "LoadBalancer"
    assert re.fullmatch(r"3306:3\d{4}/TCP", rows["svc-mariadb-loadbalancer"][4])
    assert rows["training-aurora-svc"][1:4] == ["ExternalName", "<none>",
                                                "training-aurora.cluster-abc123.us-east-1.rds.amazonaws.com"]
    assert rows["headless-svc"][2] == "None"
    assert re.fullmatch(r"\d+s", rows["mariadb-service"][5])


def test_get_wide_yaml_jsonpath(applied):
    wide = applied.kubectl("get", "service/svc-nodeport-mariadb", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-1] == "SELECTOR" and wide[1].split()[-1] == "app=mariadb"
    yaml_out = applied.kubectl("get", "svc", "mariadb-service", "-o", "yaml").stdout
    assert "ipFamilyPolicy: SingleStack" in yaml_out and "sessionAffinity: None" in yaml_out
    ip = applied.kubectl("get", "svc", "mariadb-service", "-o", "jsonpath={.spec.clusterIP}").stdout
    assert ip.startswith("127.96.")


def test_describe_service(applied):
    out = applied.kubectl("describe", "svc", "svc-nodeport-mariadb").stdout
    assert re.search(r"NodePort:\s+<unset>\s+31111/TCP", out)
    assert re.search(r"Selector:\s+app=mariadb", out)


def test_apply_with_a_change_is_configured(applied, tmp_path):
    text = (ARTICLE / "mariadb-service.yaml").read_text().replace("port: 3306\n", "port: 3307\n", 1)
    changed = tmp_path / "svc.yaml"
    changed.write_text(text)
    assert applied.kubectl("apply", "-f", str(changed)).stdout.strip() == "service/mariadb-service configured"
    assert "3307/TCP" in applied.kubectl("get", "svc", "mariadb-service").stdout
    applied.kubectl("apply", "-f", str(ARTICLE / "mariadb-service.yaml"))


def test_watch_sees_a_change(applied):
    env = {**os.environ, "KUBECONFIG": str(applied.kubeconfig)}
    proc = subprocess.Popen(["kubectl", "get", "svc", "-w", "--output-watch-events"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)

    def output_until(text: str, deadline: float, seen: str = "") -> str:
        while time.monotonic() < deadline and text not in seen:
            try:
                seen += os.read(fd, 65536).decode()
            except BlockingIOError:
                time.sleep(0.05)
        return seen

    try:
        deadline = time.monotonic() + 10
        seen = output_until("kubernetes", deadline)  # the initial list is out: the watch is open
        applied.kubectl("create", "service", "clusterip", "watched", "--tcp=80:8080")
        seen = output_until("watched", deadline, seen)
        assert re.search(r"ADDED\s+watched\s+ClusterIP", seen), seen
    finally:
        proc.kill()
        proc.wait()
        applied.kubectl("delete", "svc", "watched")


def test_explain(applied):
    out = applied.kubectl("explain", "service.spec.ports").stdout
    assert "FIELD: ports <[]ServicePort>" in out and "targetPort" in out


def test_create_secret_namespace_label_annotate(applied):
    assert applied.kubectl("create", "namespace", "team-a").stdout.strip() == "namespace/team-a created"
    out = applied.kubectl("create", "secret", "generic", "db", "--from-literal=password=hunter2", "-n", "team-a")
    assert out.stdout.strip() == "secret/db created"
    data = applied.kubectl("get", "secret", "db", "-n", "team-a", "-o", "jsonpath={.data.password}").stdout
    assert data == "aHVudGVyMg=="
    assert applied.kubectl("label", "svc", "mariadb-service", "tier=db").stdout.strip() == \
        "service/mariadb-service labeled"
    assert "mariadb-service" in applied.kubectl("get", "svc", "-l", "tier=db").stdout
    assert "mariadb-service" not in applied.kubectl("get", "svc", "-l", "tier!=db").stdout
    assert applied.kubectl("annotate", "svc", "mariadb-service", "owner=me").stdout.strip() == \
        "service/mariadb-service annotated"


def test_edit_with_editor_script(applied, tmp_path):
    editor = tmp_path / "editor.sh"
    editor.write_text(textwrap.dedent("""\
        #!/bin/sh
        sed -i 's/sessionAffinity: None/sessionAffinity: ClientIP/' "$1"
        """))
    editor.chmod(0o755)
    out = applied.kubectl("edit", "svc", "headless-svc", env={"EDITOR": str(editor)})
    assert out.stdout.strip() == "service/headless-svc edited"
    got = applied.kubectl("get", "svc", "headless-svc", "-o", "jsonpath={.spec.sessionAffinity}").stdout
    assert got == "ClientIP"


def test_invalid_apply_reports_like_kubernetes(applied, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Service
        metadata:
          name: bad-ports
        spec:
          ports:
          - port: 80
          - port: 81
        """))
    proc = applied.kubectl("apply", "-f", str(bad), check=False)
    assert proc.returncode != 0
    assert 'The Service "bad-ports" is invalid: \n* spec.ports[0].name: Required value\n' \
           "* spec.ports[1].name: Required value" in proc.stderr


def test_unknown_field_is_reported(applied, tmp_path):
    bad = tmp_path / "unknown.yaml"
    bad.write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Service
        metadata:
          name: typo
        spec:
          prots:
          - port: 80
        """))
    proc = applied.kubectl("apply", "-f", str(bad), check=False)
    assert proc.returncode != 0
    assert 'unknown field "spec.prots"' in proc.stderr


def test_delete_f(applied):
    out = applied.kubectl("delete", "-f", str(ARTICLE / "training-aurora-svc.yml")).stdout.strip()
    assert out == 'service "training-aurora-svc" deleted'
    assert "training-aurora-svc" not in applied.kubectl("get", "svc").stdout
