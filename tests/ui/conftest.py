"""One loopback server per module (tests/loopback's fixture), and HTTP helpers that sign in to its UI."""

from __future__ import annotations

import re

import requests
from tests.conftest import Server
from tests.loopback.conftest import cluster  # noqa: F401  (the fixture)


def login_url(srv: Server) -> str:
    match = re.search(r" ui=(\S+)", srv.ready_line)
    assert match, srv.ready_line
    return match.group(1)


def session(srv: Server) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # else $REQUESTS_CA_BUNDLE wins over .verify
    s.verify = str(srv.data_dir / "pki" / "ca.crt")
    return s
