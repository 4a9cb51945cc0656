"""The user service's use cases: load, apply the domain rules, store and emit in one write.

Routes (`api.py`, `internal_api.py`) and handlers (`handlers.py`) each call one of these.

Every state change goes through `deps.write(body)`, so the user document, refresh tokens
and the outbox rows of its events commit together (architecture.md, outbox). Counters for rate
limits and lockouts are plain upserts outside transactions: they are not business state.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from pymongo.asynchronous.client_session import AsyncClientSession

from contracts import Actor, Envelope, Event, new_id
from contracts.order import OrderConfirmed
from contracts.types import Address, PaymentMethodSummary, Preferences
from contracts.user import (
    UserDeleted,
    UserLoggedIn,
    UserProfileUpdated,
    UserRegistered,
    UserRoleChanged,
)
from kit.auth import Principal
from kit.auth.signing import issue_access_token
from kit.errors import Problem, conflict, not_found, too_many_requests, unauthenticated
from kit.mongo import Doc
from user_service import domain
from user_service.deps import Deps
from user_service.settings import UserSettings
from user_service.store import IdentityTaken

log = structlog.get_logger("user.commands")


@dataclass(frozen=True, slots=True)
class Caller:
    """Where a request comes from: the audit actor plus the raw User-Agent."""

    actor: Actor
    user_agent: str | None = None

    @property
    def ip(self) -> str | None:
        return self.actor.ip


def invalid_credentials() -> Problem:
    return Problem(
        401,
        "INVALID_CREDENTIALS",
        "Invalid credentials",
        "The identifier or the password is wrong.",
        headers={"WWW-Authenticate": "Bearer"},
    )


def user_not_found() -> Problem:
    return not_found("USER_NOT_FOUND", "No such user.")


def taken(field: str) -> Problem:
    code = "USERNAME_TAKEN" if field == "username" else "EMAIL_TAKEN"
    return conflict(code, f"This {field} is already registered.")


def field_problem(field: str, message: str, code: str = "VALIDATION_ERROR") -> Problem:
    return Problem(
        422, code, "Validation error", message, errors=[{"field": field, "message": message}]
    )


# ── rate limits and lockouts ───────────────────────────────────────────────────────────────


async def limit_ip(deps: Deps, caller: Caller) -> dict[str, str]:
    """api.md: per client IP, `ip_rate_limit` requests per window on check/register/login.

    Answers the `RateLimit-*` headers of this request; raises 429 `RATE_LIMITED` (with them and
    `Retry-After`) once the window's count is spent."""
    s = deps.settings
    window = timedelta(seconds=s.ip_rate_window_seconds)
    at = deps.clock()
    count = await deps.store.hit(f"ip:{caller.ip or 'unknown'}", window, at)
    reset = s.ip_rate_window_seconds - int(at.timestamp()) % s.ip_rate_window_seconds
    headers = domain.rate_limit_headers(s.ip_rate_limit, count, reset)
    if count > s.ip_rate_limit:
        problem = too_many_requests(max(1, reset))
        problem.headers.update(headers)
        raise problem
    return headers


def _lockout_keys(identifier: str, user: Doc | None, caller: Caller) -> tuple[str, str]:
    # Unknown identifiers lock out exactly like real accounts: no enumeration by behaviour.
    account = f"login:user:{user['_id']}" if user else f"login:id:{identifier.strip().lower()}"
    return account, f"login:ip:{caller.ip or 'unknown'}"


def _failure_expiry(s: UserSettings, at: datetime) -> datetime:
    return at + timedelta(seconds=s.login_failure_window_seconds + s.lockout_seconds)


async def _locked_for(deps: Deps, key: str, max_failures: int) -> int:
    """Seconds `key` stays locked out by its recorded failures (0: not locked)."""
    s = deps.settings
    return domain.lockout_remaining(
        await deps.store.failures(key),
        deps.clock(),
        max_failures=max_failures,
        window=timedelta(seconds=s.login_failure_window_seconds),
        lockout=timedelta(seconds=s.lockout_seconds),
    )


async def _ip_locked_for(deps: Deps, ip_key: str) -> int:
    """Seconds the address stays locked out (0: not locked). A read, not a claim: the per-IP
    count (50) only has to stop stuffing across many accounts, a few concurrent extra are fine."""
    return await _locked_for(deps, ip_key, deps.settings.login_ip_max_failures)


async def _claim_attempt(deps: Deps, account_key: str) -> int:
    """Count this attempt as a failure of the account before its password is checked (0), or
    answer the seconds the account stays locked. Atomic: of 20 concurrent guesses at most
    `login_max_failures` get their password checked (api.md, "Rate limits")."""
    s = deps.settings
    at = deps.clock()
    claimed = await deps.store.claim_attempt(
        account_key,
        at,
        max_failures=s.login_max_failures,
        window=timedelta(seconds=s.login_failure_window_seconds),
        lockout=timedelta(seconds=s.lockout_seconds),
        expires_at=_failure_expiry(s, at),
    )
    if claimed:
        return 0
    wait = await _locked_for(deps, account_key, s.login_max_failures)
    return max(1, wait)  # refused by the claim: locked even if the lock ended a moment ago


async def _record_ip_failure(deps: Deps, ip_key: str) -> None:
    s = deps.settings
    at = deps.clock()
    await deps.store.add_failure(ip_key, at, s.login_ip_max_failures, _failure_expiry(s, at))


# ── tokens ─────────────────────────────────────────────────────────────────────────────────


async def _issue_tokens(
    deps: Deps, user: Doc, session: AsyncClientSession, family_id: str | None = None
) -> dict[str, str]:
    """A fresh access token and the next refresh token of `family_id` (a new family if None)."""
    s = deps.settings
    access = issue_access_token(
        deps.signing_key,
        user["_id"],
        user["role"],
        s.jwt_issuer,
        s.jwt_audience,
        ttl=timedelta(minutes=s.access_token_minutes),
        token_version=int(user.get("token_version", 0)),
    )
    refresh = secrets.token_urlsafe(32)
    await deps.store.add_refresh(
        refresh,
        user_id=user["_id"],
        family_id=family_id or new_id(),
        expires_at=deps.clock() + timedelta(days=s.refresh_token_days),
        session=session,
    )
    return {"accessToken": access, "refreshToken": refresh}


def _wrap(event: Event, user_id: str, actor: Actor) -> Envelope[Any]:
    return Envelope.wrap(event, correlation_id=user_id, actor=actor)


@dataclass(frozen=True, slots=True)
class PublicProfile:
    """What of a profile may leave the service: never the payment token or the password."""

    addresses: tuple[Address, ...]
    payment_methods: tuple[PaymentMethodSummary, ...]
    preferences: Preferences


def public_profile(user: Doc) -> PublicProfile:
    return PublicProfile(
        addresses=tuple(Address(**a) for a in user.get("addresses", [])),
        payment_methods=tuple(
            PaymentMethodSummary(**{k: v for k, v in pm.items() if k != "token"})
            for pm in user.get("payment_methods", [])
        ),
        preferences=Preferences(**user.get("preferences", {})),
    )


def profile_event(user: Doc, changed: tuple[str, ...] = ()) -> UserProfileUpdated:
    """The whole profile as it now stands, for the replicas of other services."""
    public = public_profile(user)
    return UserProfileUpdated(
        user_id=user["_id"],
        username=user["username"],
        email=user["email"],
        phone=user.get("phone"),
        is_profile_complete=bool(user.get("is_profile_complete")),
        addresses=public.addresses,
        default_address_id=domain.current_default(user.get("addresses", []), "address_id"),
        payment_methods=public.payment_methods,
        preferences=public.preferences,
        disabled=bool(user.get("disabled")),
        changed_fields=changed,
    )


# ── the caller's account ──────────────────────────────────────────────────────────────────


async def active_user(deps: Deps, principal: Principal) -> Doc:
    """The caller's live account: a deleted or disabled account, or a token whose role is no
    longer the account's or that was revoked (demoted since it was issued, say), is a 401 even
    with a valid signature."""
    user = await deps.store.get(principal.user_id)
    if (
        user is None
        or user.get("disabled")
        or user["role"] != principal.role
        or principal.token_version < int(user.get("token_version", 0))
    ):
        raise unauthenticated("The account behind this token is no longer active.")
    return user


# ── identification, registration, login ───────────────────────────────────────────────────


async def check(deps: Deps, identifier: str, caller: Caller) -> Doc | None:
    """The live user with this identifier; its `lastActiveAt` moves to now."""
    user = await deps.store.by_identifier(identifier)
    if user is not None:
        await deps.store.touch(user["_id"], deps.clock())
    return user


def _validate_identity(email: str, username: str, password: str) -> None:
    if not domain.valid_email(email):
        raise field_problem("email", "Not a valid email address.")
    if not domain.valid_username(username):
        raise field_problem(
            "username", "3-32 letters, digits, '.', '_' or '-', starting with a letter or digit."
        )
    if problem := domain.password_problem(password, email=email, username=username):
        raise field_problem("password", problem, code="WEAK_PASSWORD")


def account_doc(
    *,
    user_id: str,
    username: str,
    email: str,
    password_hash: str,
    role: str,
    phone: str | None,
    device: domain.Device | None,
    ip: str | None,
    region: str | None,
    at: datetime,
) -> Doc:
    """A new user document (`store.py` describes the fields): no profile yet, never logged in.
    `email` is normalised already; `ip` is the registering client's (None for an Admin's)."""
    return {
        "_id": user_id,
        "username": username,
        "username_key": domain.username_key(username),
        "email": email,
        "password_hash": password_hash,
        "role": role,
        "phone": phone,
        "addresses": [],
        "payment_methods": [],
        "preferences": Preferences().model_dump(),
        "is_profile_complete": False,
        "profile_completion_prompted": False,
        "last_active_at": at,
        "preferred_payment_method": None,
        "order_count": 0,
        "device_info": device.as_doc() if device else None,
        "registered_ip": ip,
        "last_ip": ip,
        "region": region,
        "disabled": False,
        "deleted_at": None,
        "created_at": at,
        "updated_at": at,
    }


def registered_event(user: Doc, device: domain.Device | None = None) -> UserRegistered:
    """`UserRegistered` for a new user document."""
    return UserRegistered(
        user_id=user["_id"],
        username=user["username"],
        email=user["email"],
        phone=user["phone"],
        role=user["role"],
        region=user["region"],
        device=_label(device),
    )


async def create_account(
    deps: Deps,
    *,
    username: str,
    email: str,
    password: str,
    role: str,
    phone: str | None,
    caller: Caller,
    device: domain.Device | None = None,
    region: str | None = None,
    with_tokens: bool,
) -> tuple[Doc, dict[str, str] | None]:
    """Store a new user and emit `UserRegistered`; tokens too for a self sign-up."""
    email = domain.normalise_email(email)
    _validate_identity(email, username, password)
    password_hash = await deps.passwords.hash(password)
    ip = caller.ip if with_tokens else None
    user = account_doc(
        user_id=new_id(),
        username=username,
        email=email,
        password_hash=password_hash,
        role=role,
        phone=phone,
        device=device,
        ip=ip,
        region=region,
        at=deps.clock(),
    )
    user_id = user["_id"]
    actor = caller.actor
    if with_tokens:  # self sign-up: the new user is the actor
        actor = actor.model_copy(
            update={"user_id": user_id, "role": role, "region": region, "device": _label(device)}
        )
    event = registered_event(user, device)

    async def body(session: AsyncClientSession) -> dict[str, str] | None:
        await deps.store.insert(dict(user), session)
        tokens = await _issue_tokens(deps, user, session) if with_tokens else None
        await deps.outbox.add(session, _wrap(event, user_id, actor))
        return tokens

    try:
        tokens = await deps.write(body)
    except IdentityTaken as exc:
        raise taken(exc.field) from exc
    log.info("user.registered", user_id=user_id, role=role)
    return user, tokens


def _label(device: domain.Device | None) -> str | None:
    return device.label() if device else None


async def register(
    deps: Deps,
    *,
    username: str,
    email: str,
    password: str,
    phone: str | None,
    device_info: dict[str, Any] | None,
    region: str | None,
    caller: Caller,
) -> tuple[Doc, dict[str, str]]:
    """Self sign-up: a Customer with an incomplete profile, signed in at once."""
    device = domain.device_from(device_info, caller.user_agent)
    user, tokens = await create_account(
        deps,
        username=username,
        email=email,
        password=password,
        role="Customer",
        phone=phone,
        caller=caller,
        device=device,
        region=domain.region_for(region or caller.actor.region, caller.ip, deps.region_lookup),
        with_tokens=True,
    )
    assert tokens is not None
    return user, tokens


async def login(
    deps: Deps,
    *,
    identifier: str,
    password: str,
    device_info: dict[str, Any] | None,
    caller: Caller,
) -> tuple[Doc, dict[str, str]]:
    """Tokens for the right password; one 401 for every wrong case; 429 while locked out."""
    user = await deps.store.by_identifier(identifier)
    account_key, ip_key = _lockout_keys(identifier, user, caller)
    wait = await _ip_locked_for(deps, ip_key) or await _claim_attempt(deps, account_key)
    if wait:
        raise too_many_requests(wait, code="TOO_MANY_ATTEMPTS")
    usable = user is not None and not user.get("disabled")
    stored = user["password_hash"] if usable and user is not None else None
    if not await deps.passwords.verify(stored, password) or user is None:
        # The account's failure was counted by the claim already.
        await _record_ip_failure(deps, ip_key)
        raise invalid_credentials()
    await deps.store.clear_failures(account_key)

    at = deps.clock()
    device = domain.device_from(device_info, caller.user_agent)
    region = domain.region_for(caller.actor.region, caller.ip, deps.region_lookup)
    changes: Doc = {
        "last_active_at": at,
        "last_ip": caller.ip,
        "last_login": {"at": at, "ip": caller.ip, "device": device.as_doc(), "region": region},
    }
    if deps.passwords.needs_rehash(user["password_hash"]):
        changes["password_hash"] = await deps.passwords.hash(password)
    actor = caller.actor.model_copy(
        update={
            "user_id": user["_id"],
            "role": user["role"],
            "region": region,
            "device": device.label(),
        }
    )
    event = UserLoggedIn(
        user_id=user["_id"],
        ip=caller.ip,
        device=device.label(),
        region=region,
        is_profile_complete=bool(user.get("is_profile_complete")),
    )

    async def body(session: AsyncClientSession) -> tuple[Doc, dict[str, str]]:
        current = await deps.store.update(user["_id"], changes, session)
        if current is None or current.get("disabled"):
            raise invalid_credentials()
        tokens = await _issue_tokens(deps, current, session)
        await deps.outbox.add(session, _wrap(event, user["_id"], actor))
        return current, tokens

    return await deps.write(body)


class _Reused(Exception):
    """A rotated refresh token came back."""


def invalid_refresh() -> Problem:
    return Problem(
        401,
        "INVALID_REFRESH_TOKEN",
        "Invalid refresh token",
        "The refresh token is invalid, expired or was already used.",
    )


async def refresh(deps: Deps, token: str) -> tuple[Doc, dict[str, str]]:
    """The next token pair of the family; a reused token revokes the whole family (401)."""
    record = await deps.store.refresh_record(token)
    verdict = domain.refresh_verdict(record, deps.clock())
    if record is None or verdict == "invalid":
        raise invalid_refresh()
    if verdict == "reuse":
        await deps.store.revoke_family(record["family_id"])
        log.warning("user.refresh_reuse", user_id=record["user_id"], family=record["family_id"])
        raise invalid_refresh()

    async def body(session: AsyncClientSession) -> tuple[Doc, dict[str, str]]:
        if not await deps.store.mark_used(token, deps.clock(), session):
            raise _Reused
        user = await deps.store.get(record["user_id"], session)
        if user is None or user.get("disabled"):
            raise invalid_refresh()
        return user, await _issue_tokens(deps, user, session, family_id=record["family_id"])

    try:
        return await deps.write(body)
    except _Reused:
        await deps.store.revoke_family(record["family_id"])
        raise invalid_refresh() from None


# ── the caller's own profile ───────────────────────────────────────────────────────────────


def profile_changes(user: Doc, changes: Doc, at: datetime) -> Doc:
    """`changes` to a profile plus what follows from them: completeness, the times."""
    merged = {**user, **changes}
    addresses: list[Doc] = merged.get("addresses") or []
    methods: list[Doc] = merged.get("payment_methods") or []
    return {
        **changes,
        "is_profile_complete": domain.is_profile_complete(addresses, methods),
        "updated_at": at,
        "last_active_at": at,
    }


async def update_profile(
    deps: Deps,
    user_id: str,
    change: Callable[[Doc], Doc],
    caller: Caller,
    *,
    fields: tuple[str, ...],
) -> Doc:
    """Load the user, apply `change(user) -> changes`, recompute completeness, emit the profile."""

    async def body(session: AsyncClientSession) -> Doc:
        user = await deps.store.get(user_id, session)
        if user is None:
            raise user_not_found()
        changes = profile_changes(user, change(user), deps.clock())
        updated = await deps.store.update(user_id, changes, session)
        if updated is None:
            raise user_not_found()
        changed = fields
        if changes["is_profile_complete"] != bool(user.get("is_profile_complete")):
            changed = (*fields, "isProfileComplete")
        event = profile_event(updated, changed)
        await deps.outbox.add(session, _wrap(event, user_id, caller.actor))
        return updated

    try:
        return await deps.write(body)
    except domain.DomainError as exc:
        raise _domain_problem(exc) from exc
    except IdentityTaken as exc:
        raise taken(exc.field) from exc


def _domain_problem(exc: domain.DomainError) -> Problem:
    if exc.code.endswith("_NOT_FOUND"):
        return not_found(exc.code, exc.detail)
    if exc.field:
        return field_problem(exc.field, exc.detail, code=exc.code)
    return Problem(422, exc.code, "Unprocessable", exc.detail)


async def add_details(
    deps: Deps,
    user_id: str,
    *,
    addresses: list[Doc] | None,
    preferences: Doc | None,
    payment_methods: list[Doc] | None,
    phone: str | None,
    caller: Caller,
) -> Doc:
    """addUserDetails: append addresses and payment methods, merge preferences, set the phone."""
    try:
        methods = stored_payment_methods(payment_methods or [])
    except domain.DomainError as exc:
        raise _domain_problem(exc) from exc
    given = {
        "addresses": addresses,
        "paymentMethods": methods,
        "preferences": preferences,
        "phone": phone,
    }
    fields = tuple(name for name, value in given.items() if value)

    def change(user: Doc) -> Doc:
        return details_changes(
            user, addresses=addresses, payment_methods=methods, preferences=preferences, phone=phone
        )

    return await update_profile(deps, user_id, change, caller, fields=fields)


def stored_payment_methods(given: list[Doc]) -> list[Doc]:
    """Payment methods as given (`type`, provider `token`, `is_default`) → as stored."""
    return [
        {
            **domain.payment_method_from_token(pm["type"], pm["token"]),
            "is_default": pm.get("is_default", False),
        }
        for pm in given
    ]


def details_changes(
    user: Doc,
    *,
    addresses: list[Doc] | None,
    payment_methods: list[Doc] | None,
    preferences: Doc | None,
    phone: str | None,
) -> Doc:
    """addUserDetails' changes to `user`: addresses and payment methods appended (each given an
    id; the first becomes the default), preferences merged, the phone set."""
    changes: Doc = {}
    if addresses:
        changes["addresses"] = domain.append_items(
            user.get("addresses", []), addresses, "address_id", new_id
        )
    if payment_methods:
        changes["payment_methods"] = domain.append_items(
            user.get("payment_methods", []), payment_methods, "payment_method_id", new_id
        )
    if preferences:
        changes["preferences"] = {**user.get("preferences", {}), **preferences}
    if phone is not None:
        changes["phone"] = phone
    return changes


type AddressRule = Callable[[list[Doc]], list[Doc]]


async def change_addresses(
    deps: Deps, user_id: str, rule: AddressRule, caller: Caller, *, field: str = "addresses"
) -> Doc:
    """Apply `rule` to the caller's addresses (edit, remove, make default)."""
    return await update_profile(
        deps,
        user_id,
        lambda user: {"addresses": rule(user.get("addresses", []))},
        caller,
        fields=(field,),
    )


def edit_address(address_id: str, address: Doc) -> AddressRule:
    """Replace one address (and make it the default when asked)."""
    return lambda items: domain.replace_item(items, "address_id", address_id, address)


def remove_address(address_id: str) -> AddressRule:
    """Remove one address; the default moves to the first remaining one."""
    return lambda items: domain.remove_item(items, "address_id", address_id)


def default_address(address_id: str) -> AddressRule:
    """Make one address the default."""
    return lambda items: domain.make_default(items, "address_id", address_id)


async def mark_prompted(deps: Deps, user_id: str) -> Doc:
    """`profileCompletionPrompted = true` (a UI flag: no event for the replicas)."""

    async def body(session: AsyncClientSession) -> Doc:
        user = await deps.store.update(
            user_id, {"profile_completion_prompted": True, "last_active_at": deps.clock()}, session
        )
        if user is None:
            raise user_not_found()
        return user

    return await deps.write(body)


# ── admin ──────────────────────────────────────────────────────────────────────────────────


async def list_users(
    deps: Deps, *, role: str | None, q: str | None, after: str | None, limit: int
) -> tuple[list[Doc], bool]:
    """Live users in sign-up order after `after`, filtered; whether more follow."""
    users = await deps.store.page(role=role, q=q, after=after, limit=limit + 1)
    return users[:limit], len(users) > limit


async def get_user(deps: Deps, user_id: str) -> Doc:
    """One user (404 `USER_NOT_FOUND` for none)."""
    user = await deps.store.get(user_id)
    if user is None:
        raise user_not_found()
    return user


async def admin_update(deps: Deps, user_id: str, patch: Doc, caller: Caller) -> Doc:
    """PATCH by an Admin: role, email, username, phone, disabled; events for each change."""
    if "email" in patch:
        patch["email"] = domain.normalise_email(patch["email"])
        if not domain.valid_email(patch["email"]):
            raise field_problem("email", "Not a valid email address.")
    if "username" in patch:
        if not domain.valid_username(patch["username"]):
            raise field_problem("username", "Not a valid username.")
        patch["username_key"] = domain.username_key(patch["username"])

    async def body(session: AsyncClientSession) -> Doc:
        user = await deps.store.get(user_id, session)
        if user is None:
            raise user_not_found()
        at = deps.clock()
        changes: Doc = {**patch, "updated_at": at}
        revoke = domain.revokes_tokens(user, patch)
        if revoke:  # in the same write: no token of the old role outlives it (kit.auth.revocation)
            changes["token_version_at"] = at
        updated = await deps.store.update(
            user_id, changes, session, inc={"token_version": 1} if revoke else None
        )
        if updated is None:
            raise user_not_found()
        envelopes = []
        if "role" in patch and patch["role"] != user["role"]:
            envelopes.append(
                _wrap(
                    UserRoleChanged(
                        user_id=user_id, role=patch["role"], previous_role=user["role"]
                    ),
                    user_id,
                    caller.actor,
                )
            )
        if patch.get("disabled"):
            await deps.store.revoke_user(user_id, session)
        changed = tuple(domain_name for name, domain_name in _PATCH_FIELDS.items() if name in patch)
        envelopes.append(_wrap(profile_event(updated, changed), user_id, caller.actor))
        await deps.outbox.add(session, *envelopes)
        return updated

    try:
        return await deps.write(body)
    except IdentityTaken as exc:
        raise taken(exc.field) from exc


_PATCH_FIELDS = {
    "role": "role",
    "email": "email",
    "username": "username",
    "phone": "phone",
    "disabled": "disabled",
}


async def admin_delete(deps: Deps, user_id: str, caller: Caller) -> None:
    """Soft delete: the account stays for the audit trail, its tokens are revoked, and its
    email and username are freed (kept under `deleted_identity`) so they can sign up again."""

    async def body(session: AsyncClientSession) -> None:
        user = await deps.store.get(user_id, session)
        if user is None:
            raise user_not_found()
        at = deps.clock()
        tombstone = f"deleted:{user_id}"
        await deps.store.update(
            user_id,
            {
                "deleted_at": at,
                "updated_at": at,
                "email": tombstone,
                "username_key": tombstone,
                "deleted_identity": {"email": user["email"], "username": user["username"]},
                "token_version_at": at,
            },
            session,
            inc={"token_version": 1},  # its access tokens are refused everywhere
        )
        await deps.store.revoke_user(user_id, session)
        event = UserDeleted(user_id=user_id, role=user["role"])
        await deps.outbox.add(session, _wrap(event, user_id, caller.actor))

    await deps.write(body)


async def ensure_bootstrap_accounts(deps: Deps) -> None:
    """Create the Admin and Manager named in the settings, once (start-up; idempotent)."""
    s = deps.settings
    wanted = [
        (s.admin_email, s.admin_password, "Admin"),
        (s.manager_email, s.manager_password, "Manager"),
    ]
    caller = Caller(actor=Actor())
    for email, password, role in wanted:
        if not email or password is None:
            continue
        if await deps.store.by_email(email) is not None:
            continue
        base = "".join(ch for ch in email.split("@")[0] if ch.isalnum() or ch in "._-")
        username = (base or role.lower())[:24]
        if await deps.store.by_identifier(username) is not None:
            username = f"{username[:24]}-{secrets.token_hex(3)}"
        if len(username) < 3:
            username = f"{role.lower()}-{username}"
        try:
            await create_account(
                deps,
                username=username,
                email=email,
                password=password,
                role=role,
                phone=None,
                caller=caller,
                with_tokens=False,
            )
        except Problem as problem:
            # Another instance created it meanwhile (409), or the password breaks the policy.
            log.warning("user.bootstrap_account_skipped", role=role, code=problem.code)
        else:
            log.info("user.bootstrap_account_created", role=role, email=email)


# ── for other services (internal routes) ──────────────────────────────────────────────────


async def payment_method(deps: Deps, user_id: str, payment_method_id: str) -> tuple[Doc, Doc]:
    """The user and one of its stored payment methods, provider token included (404
    `PAYMENT_METHOD_NOT_FOUND` when the user or the method is unknown)."""
    user = await deps.store.get(user_id) or {}
    for method in user.get("payment_methods", []):
        if method.get("payment_method_id") == payment_method_id:
            return user, method
    raise not_found("PAYMENT_METHOD_NOT_FOUND", "No such payment method for this user")


async def token_versions(
    deps: Deps, cursor_at: datetime | None
) -> tuple[datetime, list[tuple[str, int]]]:
    """Now, and `(user id, token version)` of the users whose version moved since the cursor's
    time (within an access token's lifetime without one)."""
    at = deps.clock()
    start = domain.token_versions_since(
        at, cursor_at, timedelta(minutes=deps.settings.access_token_minutes)
    )
    return at, await deps.store.token_versions(start)


# ── events ─────────────────────────────────────────────────────────────────────────────────


async def count_confirmed_order(
    deps: Deps, order: OrderConfirmed, at: datetime, processed: str
) -> bool:
    """A confirmed order: orderCount + 1, preferredPaymentMethod and lastActiveAt move, in one
    write that also notes `processed` on the user document; False when nothing moved (handled
    before, or the account is gone: nothing to count either way)."""
    return await deps.store.count_order(
        order.user_id, payment_method_id=order.payment_method_id, at=at, processed=processed
    )
