"""Issuing access tokens (the user service) and publishing their public keys (JWKS).

`SigningKey` wraps one RSA private key. Its `kid` is the RFC 7638 thumbprint of the public key,
so the same key always has the same id, across restarts and instances, without storing one.
Load it from a PEM value or a path (`SigningKey.load(settings.jwt_private_key)`), or generate a
fresh 2048-bit key for local mode and tests (tokens then die with the process).

`jwks_document(keys)` holds public members only (`kty, n, e, kid, use, alg`): never `d`, `p`,
`q` or the CRT values.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kit.auth.verify import ALGORITHM

ACCESS_TOKEN_TTL = timedelta(minutes=15)
KEY_SIZE = 2048
PUBLIC_JWK_MEMBERS = ("kty", "n", "e")


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class SigningKey:
    """An RSA private key with a stable `kid`."""

    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        if private_key.key_size < KEY_SIZE:
            raise ValueError(f"RSA keys must have at least {KEY_SIZE} bits")
        self.private_key = private_key
        numbers = private_key.public_key().public_numbers()
        self._jwk = {"kty": "RSA", "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}
        # RFC 7638: SHA-256 of the required members, sorted, without whitespace.
        canonical = json.dumps(self._jwk, sort_keys=True, separators=(",", ":")).encode()
        self.kid = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).decode().rstrip("=")

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    @classmethod
    def generate(cls, key_size: int = KEY_SIZE) -> SigningKey:
        """A fresh key (local mode, tests)."""
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=key_size))

    @classmethod
    def from_pem(cls, pem: str | bytes, password: bytes | None = None) -> SigningKey:
        """A key from PEM text (PKCS#1 or PKCS#8)."""
        data = pem.encode() if isinstance(pem, str) else pem
        key = serialization.load_pem_private_key(data, password=password)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the signing key must be an RSA private key")
        return cls(key)

    @classmethod
    def load(cls, value: str | None, password: bytes | None = None) -> SigningKey:
        """From PEM text, or from the file at `value`, or generated when `value` is empty."""
        if not value or not value.strip():
            return cls.generate()
        text = value.strip()
        if text.startswith("-----BEGIN"):
            return cls.from_pem(text.replace("\\n", "\n"), password)
        return cls.from_pem(Path(text).read_bytes(), password)

    def private_pem(self) -> bytes:
        """PKCS#8 PEM, unencrypted (for writing a dev key to a file)."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK (public members only)."""
        return {**self._jwk, "kid": self.kid, "use": "sig", "alg": ALGORITHM}

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r})"


def issue_access_token(
    key: SigningKey,
    sub: str,
    role: str,
    issuer: str,
    audience: str,
    ttl: timedelta = ACCESS_TOKEN_TTL,
    extra: Mapping[str, Any] | None = None,
    *,
    token_version: int = 0,
    now: datetime | None = None,
) -> str:
    """An RS256 access token: `sub`, `role`, `ver`, `iss`, `aud`, `iat`, `nbf`, `exp`, `jti`;
    `kid` header. `ver` is the user's token version (`kit.auth.revocation`).

    `extra` claims are added but cannot replace the registered ones.
    """
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = dict(extra or {})
    claims.update(
        sub=sub,
        role=role,
        ver=token_version,
        iss=issuer,
        aud=audience,
        iat=int(issued.timestamp()),
        nbf=int(issued.timestamp()),
        exp=int((issued + ttl).timestamp()),
        jti=claims.get("jti") or uuid.uuid4().hex,
    )
    return jwt.encode(
        claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": "JWT"}
    )


def jwks_document(keys: Iterable[SigningKey]) -> dict[str, list[dict[str, str]]]:
    """`{"keys": [...]}` with the public JWK of each key (current and still-valid old ones)."""
    return {"keys": [key.public_jwk() for key in keys]}
