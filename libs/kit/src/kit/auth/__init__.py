"""Authentication and authorization: RS256 JWTs from the user service, verified against its JWKS.

- `kit.auth.deps`: `CurrentUser`, `OptionalUser`, `require_roles(...)`, `ensure_owner(...)`.
- `kit.auth.verify`: `TokenVerifier` (RS256 only, revoked tokens refused) →
  `Principal(user_id, role, token_id, token_version)`.
- `kit.auth.jwks`: `JwksKeySource(url)` (cached for `JWKS_TTL_SECONDS`, refreshed on an unknown
  kid), `StaticKeySource`.
- `kit.auth.revocation`: `TokenVersions` (the users' current token versions, in memory) and
  `TokenVersionFeed` (polls the user service's changes into it; kit's app runs it).
- `kit.auth.signing`: `SigningKey`, `issue_access_token(...)`, `jwks_document(...)` (user service).
"""

from kit.auth.deps import (
    CurrentUser,
    DeniedHook,
    OptionalUser,
    ensure_owner,
    get_current_user,
    get_optional_user,
    require_roles,
    set_denied_hook,
    use_static_keys,
)
from kit.auth.jwks import JwksKeySource, KeySource, StaticKeySource
from kit.auth.principal import ROLES, Principal, UserRole
from kit.auth.revocation import TokenVersionFeed, TokenVersions
from kit.auth.signing import SigningKey, issue_access_token, jwks_document
from kit.auth.verify import InvalidToken, TokenVerifier

__all__ = [
    "ROLES",
    "CurrentUser",
    "DeniedHook",
    "InvalidToken",
    "JwksKeySource",
    "KeySource",
    "OptionalUser",
    "Principal",
    "SigningKey",
    "StaticKeySource",
    "TokenVerifier",
    "TokenVersionFeed",
    "TokenVersions",
    "UserRole",
    "ensure_owner",
    "get_current_user",
    "get_optional_user",
    "issue_access_token",
    "jwks_document",
    "require_roles",
    "set_denied_hook",
    "use_static_keys",
]
