"""FastAPI dependencies for authentication and authorization (style.md habit 9).

    @router.get("/me")
    async def me(user: CurrentUser) -> Profile: ...

    @router.get("/users", dependencies=[require_roles("Admin")])
    async def list_users() -> Page[User]: ...

    @router.post("/orders/{order_id}/approve")
    async def approve(order_id: str, user: Annotated[Principal, require_roles("Manager", "Admin")]):

- `CurrentUser`: the verified caller; a missing or invalid bearer token is a 401
  `UNAUTHENTICATED` problem with `WWW-Authenticate: Bearer`.
- `OptionalUser`: the caller or None when no token is sent (a bad token is still a 401).
- `require_roles(*roles)`: 403 `FORBIDDEN` for any other role, after calling the app's
  `on_denied` hook (`set_denied_hook(app, hook)`), so the gateway or a service can emit an
  `AccessDenied` audit event.
- `ensure_owner(principal, owner_id, not_found)`: an Admin may act on anything; anyone else only
  on what they own, and otherwise gets the caller's not-found problem, so that another user's
  resource is indistinguishable from a missing one.

The verifier is `app.state.token_verifier` (`create_app` builds it from `settings.jwks_url`);
`use_static_keys(app, *keys)` swaps in fixed keys for tests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kit.auth.jwks import PublicKeyHolder, StaticKeySource
from kit.auth.principal import ROLES, Principal
from kit.auth.verify import InvalidToken, TokenVerifier
from kit.errors import Problem, forbidden

log = structlog.get_logger("kit.auth")

# Called with (request, principal, allowed roles) before a 403 is answered.
type DeniedHook = Callable[[Request, Principal, tuple[str, ...]], Awaitable[None]]

bearer_scheme = HTTPBearer(auto_error=False, description="Access token from the user service")


def _unauthenticated(detail: str, *, invalid: bool) -> Problem:
    challenge = 'Bearer error="invalid_token"' if invalid else "Bearer"
    return Problem(
        401,
        "UNAUTHENTICATED",
        "Unauthenticated",
        detail,
        headers={"WWW-Authenticate": challenge},
    )


def token_verifier(request: Request) -> TokenVerifier:
    """The app's verifier (`app.state.token_verifier`)."""
    verifier: TokenVerifier | None = getattr(request.app.state, "token_verifier", None)
    if verifier is None:
        raise RuntimeError("app.state.token_verifier is not set (use kit.app.create_app)")
    return verifier


async def _principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Principal | None:
    if credentials is None:
        if request.headers.get("authorization"):
            raise _unauthenticated(
                "The Authorization header must be 'Bearer <token>'.", invalid=True
            )
        return None
    try:
        principal = await token_verifier(request).verify(credentials.credentials)
    except InvalidToken as exc:
        log.info("auth.invalid_token", reason=exc.reason, path=request.url.path)
        raise _unauthenticated("The access token is invalid or expired.", invalid=True) from exc
    request.state.principal = principal
    structlog.contextvars.bind_contextvars(user_id=principal.user_id, role=principal.role)
    return principal


async def get_optional_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal | None:
    """The caller, or None without a token; 401 for a token that does not verify."""
    return await _principal(request, credentials)


async def get_current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The caller; 401 `UNAUTHENTICATED` without a valid bearer token."""
    principal = await _principal(request, credentials)
    if principal is None:
        raise _unauthenticated("A bearer access token is required.", invalid=False)
    return principal


CurrentUser = Annotated[Principal, Depends(get_current_user)]
OptionalUser = Annotated[Principal | None, Depends(get_optional_user)]


def set_denied_hook(app: FastAPI, hook: DeniedHook | None) -> None:
    """Call `hook(request, principal, roles)` before each 403 of `require_roles`."""
    app.state.on_denied = hook


async def _notify_denied(request: Request, principal: Principal, roles: tuple[str, ...]) -> None:
    log.info(
        "auth.denied",
        user_id=principal.user_id,
        role=principal.role,
        required=list(roles),
        path=request.url.path,
        method=request.method,
    )
    hook: DeniedHook | None = getattr(request.app.state, "on_denied", None)
    if hook is None:
        return
    try:
        await hook(request, principal, roles)
    except Exception as exc:  # the audit hook must never turn a 403 into a 500
        log.warning("auth.denied_hook_failed", error=repr(exc))


def require_roles(*roles: str) -> Any:
    """A dependency admitting only `roles`: use in `dependencies=[...]` or `Annotated[...]`."""
    unknown = set(roles) - set(ROLES)
    if not roles or unknown:
        raise ValueError(f"require_roles needs roles among {ROLES}, got {roles}")
    allowed = tuple(roles)

    async def check_role(request: Request, principal: CurrentUser) -> Principal:
        if principal.role not in allowed:
            await _notify_denied(request, principal, allowed)
            raise forbidden()
        return principal

    return Depends(check_role)


def ensure_owner(
    principal: Principal,
    owner_id: str | None,
    not_found: Problem | Callable[[], Problem],
    *,
    allow_roles: Collection[str] = ("Admin",),
) -> None:
    """Pass when `principal` owns the resource or has one of `allow_roles`; else raise not-found.

    Not-found rather than 403: answering "forbidden" would tell a caller the resource exists.
    """
    if principal.role in allow_roles or (owner_id is not None and principal.user_id == owner_id):
        return
    raise not_found if isinstance(not_found, Problem) else not_found()


def use_static_keys(app: FastAPI, *keys: PublicKeyHolder) -> TokenVerifier:
    """Verify tokens of `app` against fixed keys (tests); issuer/audience from its settings."""
    settings = app.state.settings
    verifier = TokenVerifier(
        StaticKeySource(keys), issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    app.state.token_verifier = verifier
    return verifier
