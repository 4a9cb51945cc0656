"""Authentication and authorization: RS256 JWT verification against the user service's JWKS."""

from kit.auth.jwks import JwksKeySource, KeySource, StaticKeySource
from kit.auth.principal import ROLES, Principal, UserRole
from kit.auth.verify import InvalidToken, TokenVerifier

__all__ = [
    "ROLES",
    "InvalidToken",
    "JwksKeySource",
    "KeySource",
    "Principal",
    "StaticKeySource",
    "TokenVerifier",
    "UserRole",
]
