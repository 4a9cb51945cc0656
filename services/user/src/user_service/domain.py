"""Pure rules of the user service (no I/O, no framework imports).

Identifiers and the password policy, where a request comes from (device, region), the profile's
addresses and payment methods (exactly one default each, completeness), the login lockout maths,
the refresh-token family rules and the raw-card-number guard. Stored users are plain dicts
(`store.py` owns their shape); these functions take and return the parts they rule on.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from ua_parser import parse as parse_user_agent

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256  # argon2 takes any length; a cap keeps hashing cost bounded
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,31}$")


class DomainError(Exception):
    """A business rule refused the change; `code` is the problem code api.md names."""

    def __init__(self, code: str, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.field = field


# ── identifiers and passwords ──────────────────────────────────────────────────────────────


def normalise_email(email: str) -> str:
    """Emails are case-insensitive (api.md): stored and compared lower-case."""
    return email.strip().lower()


def username_key(username: str) -> str:
    """Usernames are unique regardless of case; the key is what the unique index holds."""
    return username.strip().lower()


def is_email(identifier: str) -> bool:
    return "@" in identifier


def valid_email(email: str) -> bool:
    return bool(_EMAIL.match(email)) and len(email) <= 254


def valid_username(username: str) -> bool:
    """3-32 letters, digits, `.`, `_`, `-`, starting with a letter or digit; never an email."""
    return bool(_USERNAME.match(username))


def password_problem(password: str, *, email: str, username: str) -> str | None:
    """Why `password` is refused (None when it is acceptable)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"The password must have at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"The password must have at most {MAX_PASSWORD_LENGTH} characters."
    lowered = password.strip().lower()
    if lowered in {normalise_email(email), username_key(username)}:
        return "The password must not be the email or the username."
    return None


# ── where a request comes from ─────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Device:
    """What the user's client is: from `deviceInfo` fields, else parsed from the User-Agent."""

    user_agent: str | None = None
    browser: str | None = None
    os: str | None = None
    device_type: str | None = None
    screen: str | None = None

    def label(self) -> str | None:
        """One short line for events and audit: `Chrome on Windows (desktop)`."""
        parts = [self.browser or "unknown browser"]
        if self.os:
            parts.append(f"on {self.os}")
        if self.device_type:
            parts.append(f"({self.device_type})")
        return " ".join(parts) if (self.browser or self.os) else self.user_agent

    def as_doc(self) -> dict[str, str | None]:
        return {
            "userAgent": self.user_agent,
            "browser": self.browser,
            "os": self.os,
            "deviceType": self.device_type,
            "screen": self.screen,
        }


_MOBILE_OS = {"iOS", "Android", "Windows Phone", "BlackBerry OS"}


def device_from(info: Mapping[str, Any] | None, header_user_agent: str | None) -> Device:
    """Client-supplied fields win; the rest is parsed from the User-Agent (body, else header)."""
    info = info or {}
    ua = info.get("userAgent") or header_user_agent
    parsed = parse_user_agent(ua) if ua else None
    browser = os_name = device_type = None
    if parsed is not None:
        if parsed.user_agent is not None and parsed.user_agent.family != "Other":
            browser = parsed.user_agent.family
        if parsed.os is not None and parsed.os.family != "Other":
            os_name = parsed.os.family
        family = parsed.device.family if parsed.device is not None else None
        if family == "Spider":
            device_type = "bot"
        elif family in {"iPad"} or "Tablet" in (ua or ""):
            device_type = "tablet"
        elif os_name in _MOBILE_OS or "Mobile" in (ua or ""):
            device_type = "mobile"
        elif os_name:
            device_type = "desktop"
    return Device(
        user_agent=ua[:500] if ua else None,
        browser=info.get("browser") or browser,
        os=info.get("os") or os_name,
        device_type=info.get("deviceType") or device_type,
        screen=info.get("screen"),
    )


class RegionLookup(Protocol):
    """IP address → region name, or None when unknown. A GeoIP database plugs in here."""

    def __call__(self, ip: str) -> str | None: ...


LOCAL = "local"
UNKNOWN = "unknown"


def offline_region(ip: str) -> str | None:
    """The small offline table: private, loopback and link-local addresses are `local`."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if address.is_loopback or address.is_private or address.is_link_local:
        return LOCAL
    return None


def region_for(supplied: str | None, ip: str | None, lookup: RegionLookup = offline_region) -> str:
    """The client's own region when it gave one, else the lookup's answer, else `unknown`."""
    if supplied:
        return supplied
    if ip:
        return lookup(ip) or UNKNOWN
    return UNKNOWN


# ── addresses, payment methods, completeness ───────────────────────────────────────────────

type Item = dict[str, Any]


def with_default(items: Sequence[Item], id_key: str, default_id: str | None) -> list[Item]:
    """Copies of `items` where exactly `default_id` is the default (the first when None)."""
    if not items:
        return []
    ids = [item[id_key] for item in items]
    chosen = default_id if default_id in ids else ids[0]
    return [{**item, "is_default": item[id_key] == chosen} for item in items]


def current_default(items: Sequence[Item], id_key: str) -> str | None:
    return next((item[id_key] for item in items if item.get("is_default")), None)


def append_items(
    existing: Sequence[Item], new: Iterable[Item], id_key: str, make_id: Callable[[], str]
) -> list[Item]:
    """`existing` plus `new` (each given an id); the first ever becomes the default, and a new
    item marked `is_default` takes the default over (the last one marked wins)."""
    items = [dict(item) for item in existing]
    default_id = current_default(items, id_key)
    for item in new:
        fresh = {**item, id_key: make_id()}
        if fresh.pop("is_default", False) or default_id is None:
            default_id = fresh[id_key]
        items.append(fresh)
    return with_default(items, id_key, default_id)


def replace_item(items: Sequence[Item], id_key: str, item_id: str, changes: Item) -> list[Item]:
    """`items` with `item_id` replaced by `changes` (the default moves to it when asked)."""
    if item_id not in {item[id_key] for item in items}:
        raise DomainError("ADDRESS_NOT_FOUND", "No such address.")
    make_default = changes.pop("is_default", False)
    updated = [
        {**changes, id_key: item_id, "is_default": item.get("is_default", False)}
        if item[id_key] == item_id
        else dict(item)
        for item in items
    ]
    default_id = item_id if make_default else current_default(updated, id_key)
    return with_default(updated, id_key, default_id)


def remove_item(items: Sequence[Item], id_key: str, item_id: str) -> list[Item]:
    """`items` without `item_id`; when it was the default, the first remaining one is."""
    if item_id not in {item[id_key] for item in items}:
        raise DomainError("ADDRESS_NOT_FOUND", "No such address.")
    kept = [dict(item) for item in items if item[id_key] != item_id]
    return with_default(kept, id_key, current_default(kept, id_key))


def make_default(items: Sequence[Item], id_key: str, item_id: str) -> list[Item]:
    if item_id not in {item[id_key] for item in items}:
        raise DomainError("ADDRESS_NOT_FOUND", "No such address.")
    return with_default(items, id_key, item_id)


def is_profile_complete(addresses: Sequence[Item], payment_methods: Sequence[Item]) -> bool:
    """api.md: complete once the user has a default address and a payment method."""
    has_default_address = any(a.get("is_default") for a in addresses)
    return has_default_address and bool(payment_methods)


# Sandbox provider tokens (api.md "Payment test methods") → what the profile may show.
SANDBOX_TOKENS: Mapping[str, tuple[str, str]] = {
    "pm_card_ok": ("visa", "4242"),
    "pm_card_declined": ("visa", "0002"),
    "pm_card_flaky": ("mastercard", "4444"),
    "pm_card_unavailable": ("amex", "8431"),
    "pm_card_fraud": ("visa", "0019"),
}
_TOKEN = re.compile(r"^pm_[A-Za-z0-9_]{1,64}$")


def payment_method_from_token(kind: str, token: str) -> Item:
    """A stored payment method: the provider token (never shown) plus brand/last4 to show."""
    if not _TOKEN.match(token):
        raise DomainError(
            "INVALID_PAYMENT_TOKEN", "A payment method token looks like pm_…", field="token"
        )
    brand, last4 = SANDBOX_TOKENS.get(token, (None, None))
    return {"type": kind, "token": token, "brand": brand, "last4": last4}


# ── raw card numbers ───────────────────────────────────────────────────────────────────────

_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d){12,18}")


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _looks_like_card(text: str) -> bool:
    for match in _DIGIT_RUN.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            return True
    return False


def contains_card_number(value: Any) -> bool:
    """True when any string or integer anywhere in `value` holds a Luhn-valid 13-19 digit run."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return _looks_like_card(str(value))
    if isinstance(value, str):
        return _looks_like_card(value)
    if isinstance(value, Mapping):
        return any(contains_card_number(k) or contains_card_number(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(contains_card_number(v) for v in value)
    return False


# ── login lockout ──────────────────────────────────────────────────────────────────────────


# ── revocation ─────────────────────────────────────────────────────────────────────────────

# Beyond an access token's lifetime: the verifiers' leeway and clock skew between processes.
TOKEN_VERSIONS_MARGIN = timedelta(minutes=2)
# Each answer repeats the changes of this last stretch: a write that committed after a poll
# read past its time is still seen by the next poll.
TOKEN_VERSIONS_OVERLAP = timedelta(seconds=30)


def revokes_tokens(user: Mapping[str, Any], patch: Mapping[str, Any]) -> bool:
    """An Admin's change that must end the user's current access tokens (api.md, "Revocation"):
    another role, or disabling the account. (Deleting always does.)"""
    new_role = "role" in patch and patch["role"] != user.get("role")
    return bool(new_role or patch.get("disabled"))


def token_versions_since(
    at: datetime, cursor_at: datetime | None, access_token_ttl: timedelta
) -> datetime:
    """From when the version changes a poller asks for at `at` matter: since its cursor, but
    never further back than an access token lives (older tokens have expired: a new process
    needs no more to catch up, and the answer stays small)."""
    horizon = at - access_token_ttl - TOKEN_VERSIONS_MARGIN
    return horizon if cursor_at is None else max(cursor_at, horizon)


def rate_limit_headers(limit: int, count: int, reset_seconds: int) -> dict[str, str]:
    """The `RateLimit-*` headers of a request that was number `count` of a window allowing
    `limit`, which turns over in `reset_seconds` (api.md, "Rate limits")."""
    return {
        "RateLimit-Limit": str(limit),
        "RateLimit-Remaining": str(max(0, limit - count)),
        "RateLimit-Reset": str(max(1, reset_seconds)),
    }


def lockout_remaining(
    failures: Iterable[datetime],
    now: datetime,
    *,
    max_failures: int,
    window: timedelta,
    lockout: timedelta,
) -> int:
    """Seconds until the next attempt is allowed (0: allowed now).

    Locked once `max_failures` failures fall within `window`, until `lockout` after the last one.
    """
    recent = [at for at in failures if now - at < window]
    if len(recent) < max_failures:
        return 0
    until = max(recent) + lockout
    if until <= now:
        return 0
    return max(1, math.ceil((until - now).total_seconds()))


# ── refresh tokens ─────────────────────────────────────────────────────────────────────────

type RefreshVerdict = Literal["rotate", "reuse", "invalid"]


def refresh_verdict(record: Mapping[str, Any] | None, now: datetime) -> RefreshVerdict:
    """What presenting this stored refresh token means.

    `rotate`: valid, issue the next one in its family. `reuse`: it was already rotated, so
    someone holds a copy: the whole family is revoked. `invalid`: unknown, expired or revoked.
    """
    if record is None or record.get("revoked"):
        return "invalid"
    if record["expires_at"] <= now:
        return "invalid"
    if record.get("used_at") is not None:
        return "reuse"
    return "rotate"


# ── flags ──────────────────────────────────────────────────────────────────────────────────


def flags_of(user: Mapping[str, Any]) -> dict[str, Any]:
    """api.md `flags`: `{isProfileComplete, profileCompletionPrompted, lastActiveAt,
    preferredPaymentMethod, orderCount}`."""
    return {
        "isProfileComplete": bool(user.get("is_profile_complete")),
        "profileCompletionPrompted": bool(user.get("profile_completion_prompted")),
        "lastActiveAt": user.get("last_active_at"),
        "preferredPaymentMethod": user.get("preferred_payment_method"),
        "orderCount": int(user.get("order_count", 0)),
    }
