"""The UI's door: only the login prompt without a valid code, token or session; codes are good once."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import Server
from tests.ui.conftest import login_url, session


def _first_event(s, url: str) -> dict:
    with s.get(url + "/ui/api/stream?namespace=default", stream=True, timeout=30) as resp:
        assert resp.status_code == 200, resp.text
        for line in resp.iter_lines():
            if line.startswith(b"data: "):
                return json.loads(line[6:])
    raise AssertionError("stream ended")


def test_without_credentials_only_the_prompt(cluster: Server) -> None:
    s = session(cluster)
    page = s.get(cluster.url + "/ui/")
    assert page.status_code == 200 and 'name="token"' in page.text and "kubernetes" not in page.text
    for path in ("/ui/api/stream", "/ui/api/yaml?kind=Service&namespace=default&name=kubernetes", "/ui/api/events"):
        assert s.get(cluster.url + path, timeout=10).status_code == 401
    wrong = s.post(cluster.url + "/ui/login", data={"token": "not-the-token"}, allow_redirects=False)
    assert wrong.status_code == 401 and 'name="token"' in wrong.text and not wrong.cookies
    forged = login_url(cluster)[:-3] + "AAA"
    assert s.get(forged, allow_redirects=False).status_code == 401
    assert s.get(cluster.url + "/ui/api/stream", timeout=10).status_code == 401


def test_login_code_once_then_session(cluster: Server) -> None:
    s = session(cluster)
    first = s.get(login_url(cluster), allow_redirects=False)
    assert first.status_code == 303 and first.headers["Location"] == "/ui/"
    cookie = first.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Strict" in cookie
    view = _first_event(s, cluster.url)
    assert any(svc["name"] == "kubernetes" and svc["type"] == "ClusterIP" for svc in view["services"])
    assert "<title>nanokube — Services" in s.get(cluster.url + "/ui/").text
    again = session(cluster).get(login_url(cluster), allow_redirects=False)
    assert again.status_code == 401  # the code is spent


def test_token_form_and_cli_link(cluster: Server) -> None:
    s = session(cluster)
    assert s.post(cluster.url + "/ui/login", data={"token": cluster.token}, allow_redirects=False).status_code == 303
    assert s.get(cluster.url + "/ui/api/yaml?kind=Service&namespace=default&name=kubernetes").text.startswith(
        "apiVersion: v1")
    out = subprocess.run([sys.executable, "-m", "nanokube", "ui", "--print-url", "--kubeconfig",
                          str(cluster.kubeconfig)], capture_output=True, text=True, check=True, timeout=60).stdout
    url = out.strip()
    assert url.startswith(cluster.url + "/ui/login?code=") and cluster.token not in url
    assert session(cluster).get(url, allow_redirects=False).status_code == 303
