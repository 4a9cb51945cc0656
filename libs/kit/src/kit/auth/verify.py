"""Access-token verification: RS256 only, against keys from a `KeySource`.

Refused (each raises `InvalidToken`, which routes turn into 401 `UNAUTHENTICATED`): any algorithm
but RS256 (`none`, and HS256 signed with the public key as the HMAC secret), a missing or unknown
`kid`, a bad signature, an expired token, a wrong `iss` or `aud`, a missing `sub`/`exp`, a
role that is not one of Customer, Manager, Admin, or (with `revocations`) a token version `ver`
below its user's current one (`kit.auth.revocation`: demoted, disabled or deleted since).
"""

from __future__ import annotations

from typing import Any, cast

import jwt

from kit.auth.jwks import KeySource
from kit.auth.principal import ROLES, Principal, UserRole
from kit.auth.revocation import TokenVersions

ALGORITHM = "RS256"
DEFAULT_LEEWAY = 10  # seconds of clock skew between the user service and us


class InvalidToken(Exception):
    """The bearer token cannot be trusted; `reason` is for logs, never for the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
    ) -> None:
        self.key_source = key_source
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.revocations = revocations

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
        """All verified claims of `token`."""
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
        return claims

    async def aclose(self) -> None:
        close = getattr(self.key_source, "aclose", None)
        if close is not None:
            await close()
