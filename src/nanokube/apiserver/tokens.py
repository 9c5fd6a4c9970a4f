"""ServiceAccount tokens: bound, expiring JWTs (ES256) as kube-apiserver's TokenRequest issues them
(pkg/serviceaccount/claims.go, jwt.go), signed with a key of their own in the server's pki directory, and
checked on every request that presents one (issuer, audience, expiry, signature, and that the ServiceAccount
still exists with the same uid)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIENCES = (ISSUER,)
DEFAULT_SECONDS = 3600
MIN_SECONDS = 600
MAX_SECONDS = 2 ** 32


@dataclass(frozen=True)
class UserInfo:
    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"username": self.username}
        if self.uid:
            out["uid"] = self.uid
        out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = self.extra
        return out


ADMIN = UserInfo("kubernetes-admin", groups=("kubeadm:cluster-admins", "system:masters", "system:authenticated"))


def service_account_user(namespace: str, name: str, uid: str = "", extra: dict[str, list[str]] | None = None
                         ) -> UserInfo:
    return UserInfo(f"system:serviceaccount:{namespace}:{name}", uid,
                    ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
                    extra or {})


def bearer_token(header: str) -> str:
    """The token of an `Authorization` header, "" when there is none. As kube-apiserver's bearertoken
    authenticator reads it: the scheme is case-insensitive (the official Python client's in-cluster configuration
    sends `bearer <token>`) and the token is the second space-separated word."""
    parts = header.strip().split(" ")
    return parts[1] if len(parts) >= 2 and parts[0].lower() == "bearer" else ""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Issues and verifies tokens with the server's ServiceAccount key (created on first use, 0600).

    The key, and `cryptography` with it, is loaded on the first token issued or checked: no ServiceAccount
    token exists before the first pod starts, so a server gets ready without either."""

    def __init__(self, pki: Path) -> None:
        self._path = pki / "sa.key"
        self._loaded: tuple[ec.EllipticCurvePrivateKey, str] | None = None

    def _key(self) -> tuple[ec.EllipticCurvePrivateKey, str]:
        """(private key, key id), created and loaded on first use."""
        if self._loaded is None:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import ec

            path = self._path
            if not path.exists():
                key = ec.generate_private_key(ec.SECP256R1())
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch(mode=0o600)
                path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
            loaded = serialization.load_pem_private_key(path.read_bytes(), None)
            assert isinstance(loaded, ec.EllipticCurvePrivateKey)
            public = loaded.public_key().public_bytes(serialization.Encoding.DER,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
            self._loaded = (loaded, _b64(hashlib.sha256(public).digest()))
        return self._loaded

    @property
    def key_id(self) -> str:
        return self._key()[1]

    def issue(self, namespace: str, sa_name: str, sa_uid: str, *, seconds: int, audiences: list[str],
              bound: dict[str, str] | None = None, now: float | None = None) -> tuple[str, int]:
        """A signed token and its expiry (epoch seconds)."""
        issued = int(now if now is not None else time.time())
        expires = issued + seconds
        private: dict[str, Any] = {"namespace": namespace, "serviceaccount": {"name": sa_name, "uid": sa_uid}}
        if bound:
            private[bound["kind"].lower()] = {"name": bound["name"], "uid": bound.get("uid", "")}
        claims = {"aud": audiences, "exp": expires, "iat": issued, "iss": ISSUER, "jti": str(uuid.uuid4()),
                  "kubernetes.io": private, "nbf": issued, "sub": f"system:serviceaccount:{namespace}:{sa_name}"}
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        key, key_id = self._key()
        header = {"alg": "ES256", "kid": key_id}
        signing_input = (_b64(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         _b64(json.dumps(claims, separators=(",", ":")).encode()))
        r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return signing_input + "." + _b64(signature), expires

    def verify(self, token: str, now: float | None = None) -> dict[str, Any] | None:
        """The claims of a valid token of ours (signature, issuer, audience, time window), else None."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = json.loads(_unb64(parts[0]))
            claims = json.loads(_unb64(parts[1]))
            signature = _unb64(parts[2])
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(header, dict) or header.get("alg") != "ES256" or len(signature) != 64:
            return None
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        try:
            self._key()[0].public_key().verify(
                encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")),
                (parts[0] + "." + parts[1]).encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return None
        if not isinstance(claims, dict) or claims.get("iss") != ISSUER:
            return None
        audiences = claims.get("aud") or []
        if not any(a in AUDIENCES for a in (audiences if isinstance(audiences, list) else [audiences])):
            return None
        current = now if now is not None else time.time()
        if not isinstance(claims.get("exp"), int) or current >= claims["exp"] or current < claims.get("nbf", 0) - 60:
            return None
        return claims
