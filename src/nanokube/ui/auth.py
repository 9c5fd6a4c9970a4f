"""Browser credentials for the UI, all derived from the cluster token (no state to share with the CLI).

A login code (printed on the `nanokube ready` line, by `nanokube ui --print-url`) is good once and for
CODE_SECONDS; exchanged at /ui/login it becomes a session cookie (HttpOnly, Secure, SameSite=Strict, path /ui/).
The token itself never travels in a URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

CODE_SECONDS = 3600
SESSION_SECONDS = 12 * 3600
COOKIE = "nanokube-ui"


def _mac(token: str, purpose: str, payload: str) -> str:
    digest = hmac.new(token.encode(), f"{purpose}:{payload}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def login_code(token: str, now: float | None = None) -> str:
    payload = f"{int((now or time.time()) + CODE_SECONDS)}.{secrets.token_urlsafe(12)}"
    return f"{payload}.{_mac(token, 'login', payload)}"


def login_url(api_url: str, token: str) -> str:
    return f"{api_url.rstrip('/')}/ui/login?code={login_code(token)}"


def _valid(token: str, purpose: str, value: str, now: float) -> str | None:
    """The payload of a signed value that has not expired, else None."""
    payload, _, mac = value.rpartition(".")
    expiry = payload.split(".", 1)[0]
    if not payload or not expiry.isdigit() or int(expiry) < now:
        return None
    return payload if hmac.compare_digest(mac, _mac(token, purpose, payload)) else None


class Sessions:
    """Checks codes (each usable once) and session cookies against the server's token."""

    def __init__(self, token: str) -> None:
        self._token = token
        self._used: dict[str, int] = {}  # code payload -> expiry, forgotten once expired

    def redeem(self, code: str) -> str | None:
        """A new session cookie value for a valid, unused code."""
        now = time.time()
        payload = _valid(self._token, "login", code, now)
        if payload is None or payload in self._used:
            return None
        self._used = {p: exp for p, exp in self._used.items() if exp >= now}
        self._used[payload] = int(payload.split(".", 1)[0])
        return self.new_session(now)

    def redeem_token(self, given: str) -> str | None:
        if not given or not hmac.compare_digest(given.encode(), self._token.encode()):
            return None
        return self.new_session(time.time())

    def new_session(self, now: float) -> str:
        payload = f"{int(now + SESSION_SECONDS)}.{secrets.token_urlsafe(9)}"
        return f"{payload}.{_mac(self._token, 'session', payload)}"

    def valid_session(self, value: str | None) -> bool:
        return bool(value) and _valid(self._token, "session", value or "", time.time()) is not None
