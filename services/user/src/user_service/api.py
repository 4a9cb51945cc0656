"""HTTP routes of the user service, under `/api/v1/users` (reached through the gateway).

Each route parses its request, runs one command (`commands.py`) and answers with the models of
`schemas.py`. Request bodies are strict (`schemas.py`). A body holding anything that looks like a
raw card number is refused with 422 `RAW_CARD_NUMBER_REJECTED` before it is parsed, and is
neither stored nor logged.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from kit.auth import CurrentUser, Principal, ensure_owner, require_roles
from kit.auth.signing import jwks_document
from kit.errors import PROBLEM_RESPONSES, Problem, validation_errors, validation_problem
from kit.models import Cursor, Limit, Page, decode_cursor, encode_cursor
from kit.mongo import Doc
from kit.request_context import actor_from_request
from user_service import commands, domain
from user_service.commands import Caller
from user_service.deps import DepsDep
from user_service.schemas import (
    AddressIn,
    AdminUser,
    CheckBody,
    CheckResult,
    CreateUserBody,
    DetailsBody,
    Flags,
    Jwks,
    LoggedIn,
    LoginBody,
    PatchUserBody,
    Profile,
    RefreshBody,
    RegisterBody,
    Registered,
    Role,
    TokenPair,
)

# Verifiers refetch on an unknown `kid` anyway; a short cache spares the service the rest.
JWKS_CACHE_CONTROL = "public, max-age=300"


async def reject_card_numbers(request: Request) -> None:
    """422 `RAW_CARD_NUMBER_REJECTED` for a body holding a Luhn-valid 13-19 digit number."""
    raw = await request.body()
    if not raw:
        return
    try:
        body = json.loads(raw)
        found = domain.contains_card_number(body)
    except ValueError:
        return  # FastAPI answers the malformed JSON itself
    except RecursionError as exc:  # absurdly deep nesting: no request body of ours is like that
        raise validation_problem([{"field": "body", "message": "Too deeply nested"}]) from exc
    if found:
        raise Problem(
            422,
            "RAW_CARD_NUMBER_REJECTED",
            "Raw card numbers are not accepted",
            "Send a payment provider token (pm_…), never a card number.",
        )


router = APIRouter(
    prefix="/api/v1/users",
    tags=["users"],
    dependencies=[Depends(reject_card_numbers)],
    responses=PROBLEM_RESPONSES,
)


def profile_of(user: Doc) -> Profile:
    public = commands.public_profile(user)
    return Profile(
        user_id=user["_id"],
        username=user["username"],
        email=user["email"],
        phone=user.get("phone"),
        role=user["role"],
        addresses=list(public.addresses),
        preferences=public.preferences,
        payment_methods=list(public.payment_methods),
        flags=Flags.model_validate(domain.flags_of(user)),
    )


def admin_view(user: Doc) -> AdminUser:
    return AdminUser(
        **profile_of(user).model_dump(by_alias=False),
        device_info=user.get("device_info"),
        registered_ip=user.get("registered_ip"),
        last_ip=user.get("last_ip"),
        region=user.get("region"),
        disabled=bool(user.get("disabled")),
        created_at=user["created_at"],
        updated_at=user["updated_at"],
    )


# ── dependencies ───────────────────────────────────────────────────────────────────────────


def caller_of(request: Request, principal: Principal | None = None) -> Caller:
    return Caller(
        actor=actor_from_request(request, principal),
        user_agent=request.headers.get("user-agent"),
    )


async def active_user(deps: DepsDep, principal: CurrentUser) -> Doc:
    """The caller's live account (401 for a deleted, disabled, demoted or revoked one)."""
    return await commands.active_user(deps, principal)


Me = Annotated[Doc, Depends(active_user)]


async def ip_rate_limited(
    request: Request, response: Response, deps: DepsDep
) -> AsyncIterator[None]:
    """The per-address limit of check, register and login: 429 `RATE_LIMITED` past it, and the
    `RateLimit-*` headers on every answer of the route, its errors included (api.md)."""
    headers = await commands.limit_ip(deps, caller_of(request))
    response.headers.update(headers)
    try:
        yield
    except Problem as refused:
        refused.headers = {**headers, **refused.headers}
        raise
    except RequestValidationError as exc:
        invalid = validation_problem(validation_errors(exc))
        invalid.headers.update(headers)
        raise invalid from exc


RateLimited = Depends(ip_rate_limited)

_WINDOW_HEADERS = {
    "RateLimit-Limit": "Requests this address may make in the current window",
    "RateLimit-Remaining": "Requests left in the current window",
    "RateLimit-Reset": "Seconds until the window starts again",
}
RATE_LIMIT_HEADERS = {
    name: {"description": text, "schema": {"type": "integer"}}
    for name, text in _WINDOW_HEADERS.items()
}


def rate_limited_responses(success: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI answers of a rate-limited route: each carries the `RateLimit-*` headers, the
    429 `Retry-After` too (what `ip_rate_limited` sends, documented for clients)."""
    answers: dict[int | str, dict[str, Any]] = {**PROBLEM_RESPONSES, success: {}}
    documented = {
        code: {**answer, "headers": RATE_LIMIT_HEADERS} for code, answer in answers.items()
    }
    retry_after = {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer"},
    }
    documented[429]["headers"] = {**RATE_LIMIT_HEADERS, "Retry-After": retry_after}
    return documented


def signed_in_caller(request: Request, principal: CurrentUser) -> Caller:
    """Who is calling (a signed-in user), for the actor block of the events it causes."""
    return caller_of(request, principal)


CallerDep = Annotated[Caller, Depends(signed_in_caller)]
AdminOnly = Annotated[Principal, require_roles("Admin")]


# ── routes ─────────────────────────────────────────────────────────────────────────────────


@router.get("/.well-known/jwks.json", response_model=Jwks)
async def jwks(deps: DepsDep, response: Response) -> Jwks:
    """The public keys that verify access tokens (anyone may fetch them)."""
    response.headers["Cache-Control"] = JWKS_CACHE_CONTROL
    return Jwks.model_validate(jwks_document(deps.public_keys or [deps.signing_key]))


@router.post(
    "/check",
    dependencies=[RateLimited],
    responses=rate_limited_responses(200),
)
async def check(body: CheckBody, deps: DepsDep, request: Request) -> CheckResult:
    """checkUserExists: by email or username; touches `lastActiveAt` when it exists."""
    user = await commands.check(deps, body.identifier, caller_of(request))
    if user is None:
        return CheckResult(exists=False)
    return CheckResult(exists=True, user_id=user["_id"], role=user["role"])


@router.post(
    "/register",
    status_code=201,
    dependencies=[RateLimited],
    responses=rate_limited_responses(201),
)
async def register(body: RegisterBody, deps: DepsDep, request: Request) -> Registered:
    """registerUser: a Customer with an incomplete profile, and its first token pair."""
    user, tokens = await commands.register(
        deps,
        username=body.username,
        email=body.email,
        password=body.password,
        phone=body.phone,
        device_info=body.device_info.model_dump(by_alias=True) if body.device_info else None,
        region=body.region,
        caller=caller_of(request),
    )
    return Registered(user_id=user["_id"], role=user["role"], **_tokens(tokens))


def _tokens(tokens: dict[str, str]) -> dict[str, str]:
    return {"access_token": tokens["accessToken"], "refresh_token": tokens["refreshToken"]}


@router.post(
    "/login",
    dependencies=[RateLimited],
    responses=rate_limited_responses(200),
)
async def login(body: LoginBody, deps: DepsDep, request: Request) -> LoggedIn:
    """login: a token pair and the flags; one 401 for every wrong case, 429 while locked."""
    user, tokens = await commands.login(
        deps,
        identifier=body.identifier,
        password=body.password,
        device_info=body.device_info.model_dump(by_alias=True) if body.device_info else None,
        caller=caller_of(request),
    )
    return LoggedIn(
        user_id=user["_id"],
        role=user["role"],
        flags=Flags.model_validate(domain.flags_of(user)),
        **_tokens(tokens),
    )


@router.post("/token/refresh")
async def refresh(body: RefreshBody, deps: DepsDep) -> TokenPair:
    """Rotate a refresh token; a reused one revokes its whole family (401)."""
    user, tokens = await commands.refresh(deps, body.refresh_token)
    return TokenPair(user_id=user["_id"], role=user["role"], **_tokens(tokens))


@router.get("/me")
async def me(user: Me) -> Profile:
    """The caller's profile with its flags."""
    return profile_of(user)


@router.post("/me/details")
async def add_details(body: DetailsBody, user: Me, deps: DepsDep, caller: CallerDep) -> Profile:
    """addUserDetails: append addresses and payment methods, merge preferences."""
    updated = await commands.add_details(
        deps,
        user["_id"],
        addresses=[a.model_dump() for a in body.addresses or []],
        preferences=body.preferences.model_dump(exclude_unset=True) if body.preferences else None,
        payment_methods=[pm.model_dump() for pm in body.payment_methods or []],
        phone=body.phone,
        caller=caller,
    )
    return profile_of(updated)


@router.put("/me/addresses/{address_id}")
async def edit_address(
    address_id: str, body: AddressIn, user: Me, deps: DepsDep, caller: CallerDep
) -> Profile:
    """Replace one of the caller's addresses."""
    rule = commands.edit_address(address_id, body.model_dump())
    return profile_of(await commands.change_addresses(deps, user["_id"], rule, caller))


@router.delete("/me/addresses/{address_id}")
async def remove_address(address_id: str, user: Me, deps: DepsDep, caller: CallerDep) -> Profile:
    """Remove one of the caller's addresses (the default moves to the next one)."""
    rule = commands.remove_address(address_id)
    return profile_of(await commands.change_addresses(deps, user["_id"], rule, caller))


@router.post("/me/addresses/{address_id}/default")
async def default_address(address_id: str, user: Me, deps: DepsDep, caller: CallerDep) -> Profile:
    """Make one of the caller's addresses the default."""
    rule = commands.default_address(address_id)
    return profile_of(
        await commands.change_addresses(deps, user["_id"], rule, caller, field="defaultAddressId")
    )


@router.post("/me/profile-prompted")
async def profile_prompted(user: Me, deps: DepsDep) -> Profile:
    """Remember that the caller was asked to complete the profile."""
    return profile_of(await commands.mark_prompted(deps, user["_id"]))


@router.get("")
async def list_users(
    admin: AdminOnly,
    deps: DepsDep,
    role: Role | None = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Page[AdminUser]:
    """Admin: users in sign-up order, filtered by `role` and `q` (email or username part)."""
    await active_user(deps, admin)
    after = (decode_cursor(cursor) or {}).get("id")
    users, more = await commands.list_users(
        deps, role=role, q=q, after=after if isinstance(after, str) else None, limit=limit
    )
    next_cursor = encode_cursor({"id": users[-1]["_id"]}) if more and users else None
    return Page[AdminUser](items=[admin_view(u) for u in users], next_cursor=next_cursor)


@router.post("", status_code=201)
async def create_user(
    body: CreateUserBody, admin: AdminOnly, deps: DepsDep, request: Request
) -> AdminUser:
    """Admin: create a user of any role."""
    await active_user(deps, admin)
    user, _ = await commands.create_account(
        deps,
        username=body.username,
        email=body.email,
        password=body.password,
        role=body.role,
        phone=body.phone,
        caller=caller_of(request, admin),
        with_tokens=False,
    )
    return admin_view(user)


@router.get("/{user_id}")
async def get_user(user_id: str, principal: CurrentUser, deps: DepsDep) -> AdminUser | Profile:
    """Admin: any user with its sign-up details; anyone else: only themselves."""
    await active_user(deps, principal)
    ensure_owner(principal, user_id, commands.user_not_found)
    user = await commands.get_user(deps, user_id)
    return admin_view(user) if principal.is_admin else profile_of(user)


@router.patch("/{user_id}")
async def patch_user(
    user_id: str, body: PatchUserBody, admin: AdminOnly, deps: DepsDep, request: Request
) -> AdminUser:
    """Admin: change role, email, username, phone or disabled."""
    await active_user(deps, admin)
    patch = body.model_dump(exclude_unset=True)
    updated = await commands.admin_update(deps, user_id, patch, caller_of(request, admin))
    return admin_view(updated)


@router.delete("/{user_id}", status_code=204)
async def delete_user(user_id: str, admin: AdminOnly, deps: DepsDep, request: Request) -> Response:
    """Admin: soft delete; the user's tokens are revoked."""
    await active_user(deps, admin)
    await commands.admin_delete(deps, user_id, caller_of(request, admin))
    return Response(status_code=204)


ROUTERS = [router]
