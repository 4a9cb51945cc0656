"""Request and response models of the user service's HTTP API (`api.py`, `internal_api.py`).

Request bodies are strict (`kit.models.StrictModel`): an unknown field such as `role`,
`orderCount` or `isProfileComplete` in a customer's body is a 422 `VALIDATION_ERROR`, never
silently applied or ignored; a value of the wrong JSON type (an object such as `{"$ne": ""}`
where a string is expected) is a 422 too and never reaches a query.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from contracts.types import Address, PaymentMethodSummary, Preferences
from kit.models import ResponseModel, StrictModel
from user_service import domain

Role = Literal["Customer", "Manager", "Admin"]
Channel = Literal["email", "sms", "push", "inApp"]
Short = Annotated[str, Field(min_length=1, max_length=200)]


# ── request bodies ─────────────────────────────────────────────────────────────────────────


class DeviceInfo(StrictModel):
    user_agent: str | None = Field(None, max_length=500)
    os: str | None = Field(None, max_length=100)
    browser: str | None = Field(None, max_length=100)
    device_type: str | None = Field(None, max_length=50)
    screen: str | None = Field(None, max_length=50)


class CheckBody(StrictModel):
    identifier: Annotated[str, Field(min_length=1, max_length=254)]


class RegisterBody(StrictModel):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    email: Annotated[str, Field(min_length=3, max_length=254)]
    password: Annotated[str, Field(min_length=1, max_length=domain.MAX_PASSWORD_LENGTH)]
    phone: str | None = Field(None, max_length=32)
    device_info: DeviceInfo | None = None
    region: str | None = Field(None, max_length=64)


class LoginBody(StrictModel):
    identifier: Annotated[str, Field(min_length=1, max_length=254)]
    password: Annotated[str, Field(min_length=1, max_length=domain.MAX_PASSWORD_LENGTH)]
    device_info: DeviceInfo | None = None


class RefreshBody(StrictModel):
    refresh_token: Annotated[str, Field(min_length=1, max_length=200)]


class AddressIn(StrictModel):
    label: Short
    line1: Short
    line2: str | None = Field(None, max_length=200)
    city: Short
    state: Short
    zip: Annotated[str, Field(min_length=1, max_length=20)]
    country: Annotated[str, Field(min_length=2, max_length=56)]
    is_default: bool = False


class PreferencesIn(StrictModel):
    delivery_time: str | None = Field(None, max_length=100)
    payment_method: str | None = Field(None, max_length=100)
    newsletter_opt_in: bool | None = None
    notification_channels: list[Channel] | None = Field(None, max_length=4)
    partial_fulfillment: Literal["ask", "accept", "cancel"] | None = None


class PaymentMethodIn(StrictModel):
    type: Literal["card"]
    token: Annotated[str, Field(min_length=1, max_length=100)]
    is_default: bool = False


class DetailsBody(StrictModel):
    addresses: list[AddressIn] | None = Field(None, max_length=20)
    preferences: PreferencesIn | None = None
    payment_methods: list[PaymentMethodIn] | None = Field(None, max_length=10)
    phone: str | None = Field(None, max_length=32)


class CreateUserBody(StrictModel):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    email: Annotated[str, Field(min_length=3, max_length=254)]
    password: Annotated[str, Field(min_length=1, max_length=domain.MAX_PASSWORD_LENGTH)]
    role: Role
    phone: str | None = Field(None, max_length=32)


class PatchUserBody(StrictModel):
    role: Role | None = None
    email: str | None = Field(None, min_length=3, max_length=254)
    username: str | None = Field(None, min_length=1, max_length=64)
    phone: str | None = Field(None, max_length=32)  # null clears the phone
    disabled: bool | None = None

    @field_validator("role", "email", "username", "disabled", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        """Omitted means unchanged; an explicit null would store a user without a role/email."""
        if value is None:
            raise ValueError("may be omitted but not null")
        return value


# ── responses ──────────────────────────────────────────────────────────────────────────────


class Flags(ResponseModel):
    is_profile_complete: bool
    profile_completion_prompted: bool
    last_active_at: datetime | None = None
    preferred_payment_method: str | None = None
    order_count: int = 0


class Profile(ResponseModel):
    user_id: str
    username: str
    email: str
    phone: str | None = None
    role: str
    addresses: list[Address]
    preferences: Preferences
    payment_methods: list[PaymentMethodSummary]  # never the provider token
    flags: Flags


class AdminUser(Profile):
    """What an Admin sees of a user: the profile plus where it signed up and last came from."""

    device_info: dict[str, Any] | None = None
    registered_ip: str | None = None
    last_ip: str | None = None
    region: str | None = None
    disabled: bool = False
    created_at: datetime
    updated_at: datetime


class CheckResult(ResponseModel):
    exists: bool
    user_id: str | None = None
    role: str | None = None


class Registered(ResponseModel):
    user_id: str
    status: Literal["created"] = "created"
    role: str
    access_token: str
    refresh_token: str


class TokenPair(ResponseModel):
    access_token: str
    refresh_token: str
    user_id: str
    role: str


class LoggedIn(TokenPair):
    flags: Flags


class PublicJwk(ResponseModel):
    """One RSA public key (RFC 7517): public members only."""

    kty: str
    n: str
    e: str
    kid: str
    use: str
    alg: str


class Jwks(ResponseModel):
    """The keys that verify the service's access tokens."""

    keys: list[PublicJwk]


# ── internal routes (`internal_api.py`) ────────────────────────────────────────────────────


class PaymentMethodToken(ResponseModel):
    payment_method_id: str
    token: str
    brand: str | None = None
    last4: str | None = None
    # What the fraud rules weigh: how old the account is and where it was registered.
    account_created_at: datetime | None = None
    account_region: str | None = None


class TokenVersion(ResponseModel):
    user_id: str
    version: int


class TokenVersions(ResponseModel):
    """Current token versions that moved since the cursor; pass `cursor` back as `since`."""

    items: list[TokenVersion]
    cursor: str
