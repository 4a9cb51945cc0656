"""Access-token verification: RS256 only, against keys from a `KeySource`.

Refused (each raises `InvalidToken`, which routes turn into 401 `UNAUTHENTICATED`): any algorithm
but RS256 (`none`, and HS256 signed with the public key as the HMAC secret), a missing or unknown
`kid`, a bad signature, an expired token, a wrong `iss` or `aud`, a missing `sub`/`exp`, a
role that is not one of Customer, Manager, Admin, or (with `revocations`) a token version `ver`
below its user's current one (`kit.auth.revocation`: demoted, disabled or deleted since).

A client sends the same token with every request until it expires (a poller, the web app), so
the RS256 check and the claim parsing of a token that passed them are kept (`VerifiedTokens`:
by the SHA-256 of the token, at most `cache_size` tokens, least recently used dropped first)
until its `exp`. Only that is kept: the role and `ver` checks and the revocation table are
consulted on every request, so a revoked or demoted user's token is refused at once; and a kept
token is used only while its signing key is still the one the key source gives for its `kid`,
so a key the user service stops publishing stops verifying within the JWKS TTL, as before.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from kit.auth.jwks import KeySource
from kit.auth.principal import ROLES, Principal, UserRole
from kit.auth.revocation import TokenVersions

ALGORITHM = "RS256"
DEFAULT_LEEWAY = 10  # seconds of clock skew between the user service and us
# Distinct live tokens a process keeps verified (TOKEN_CACHE_SIZE): a few hundred bytes each.
DEFAULT_CACHE_SIZE = 4096


class InvalidToken(Exception):
    """The bearer token cannot be trusted; `reason` is for logs, never for the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Verified:
    claims: dict[str, Any]
    expires_at: float  # the token's `exp` (epoch seconds)
    kid: str
    key: RSAPublicKey  # the key its signature was checked with


class VerifiedTokens:
    """Claims of tokens whose signature and registered claims passed, until their `exp`;
    bounded, least recently used first out. Keyed by the token's SHA-256, not the token."""

    def __init__(self, size: int, clock: Callable[[], float] = time.time) -> None:
        self.size = size
        self.clock = clock
        self._entries: OrderedDict[bytes, _Verified] = OrderedDict()

    @staticmethod
    def digest(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, digest: bytes) -> _Verified | None:
        """The kept verification of a token, while it has not expired."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if self.clock() >= entry.expires_at:
            del self._entries[digest]
            return None
        self._entries.move_to_end(digest)
        return entry

    def put(self, digest: bytes, entry: _Verified) -> None:
        if self.size <= 0 or self.clock() >= entry.expires_at:
            return
        self._entries[digest] = entry
        self._entries.move_to_end(digest)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def forget(self, digest: bytes) -> None:
        self._entries.pop(digest, None)

    def __len__(self) -> int:
        return len(self._entries)


class TokenVerifier:
    """Verifies access tokens issued by the user service."""

    def __init__(
        self,
        key_source: KeySource,
        issuer: str,
        audience: str,
        *,
        leeway: int = DEFAULT_LEEWAY,
        revocations: TokenVersions | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self.key_source = key_source
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.revocations = revocations
        self.verified = VerifiedTokens(cache_size)

    async def verify(self, token: str) -> Principal:
        """The caller of a valid token; raises `InvalidToken` otherwise."""
        claims = await self.claims(token)
        role = claims.get("role")
        if role not in ROLES:
            raise InvalidToken("unknown role")
        version = claims.get("ver", 0)
        if type(version) is not int or version < 0:
            raise InvalidToken("bad ver")
        user_id = str(claims["sub"])
        if self.revocations is not None and not self.revocations.admits(user_id, version):
            raise InvalidToken("revoked" if self.revocations.synchronised else "versions unknown")
        jti = claims.get("jti")
        return Principal(
            user_id=user_id,
            role=cast(UserRole, role),
            token_id=str(jti) if jti else None,
            token_version=version,
        )

    async def claims(self, token: str) -> dict[str, Any]:
        """All verified claims of `token` (a copy: callers may change it)."""
        digest = self.verified.digest(token)
        kept = self.verified.get(digest)
        if kept is not None:
            if await self.key_source.get_key(kept.kid) is kept.key:
                return dict(kept.claims)
            self.verified.forget(digest)  # its key was rotated out or replaced: check again
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"algorithm {header.get('alg')!r} not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("no kid")
        key = await self.key_source.get_key(kid)
        if key is None:
            raise InvalidToken("unknown kid")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(type(exc).__name__) from exc
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise InvalidToken("bad sub")
        self.verified.put(digest, _Verified(dict(claims), float(claims["exp"]), kid, key))
        return claims

    async def aclose(self) -> None:
        close = getattr(self.key_source, "aclose", None)
        if close is not None:
            await close()
