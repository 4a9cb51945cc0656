"""Events emitted by the user service."""

from __future__ import annotations

from pydantic import Field

from contracts.base import Event
from contracts.registry import event
from contracts.types import Address, PaymentMethodSummary, Preferences, UserRole


@event("user")
class UserRegistered(Event):
    """A new account exists (self sign-up or created by an Admin)."""

    user_id: str
    username: str
    email: str
    phone: str | None = None
    role: UserRole = "Customer"
    region: str | None = None
    device: str | None = None


@event("user")
class UserLoggedIn(Event):
    """A user signed in successfully."""

    user_id: str
    ip: str | None = None
    device: str | None = None
    region: str | None = None
    # The profile as the user service saw it at this login (None from older producers): notify
    # nudges on it without waiting for its replica to catch up with an earlier profile update.
    is_profile_complete: bool | None = None


@event("user")
class UserProfileUpdated(Event):
    """A user's profile changed; carries the whole profile as it now stands, for replicas."""

    user_id: str
    username: str
    email: str
    phone: str | None = None
    is_profile_complete: bool
    addresses: tuple[Address, ...] = ()
    default_address_id: str | None = None
    payment_methods: tuple[PaymentMethodSummary, ...] = ()
    preferences: Preferences = Field(default_factory=Preferences)
    disabled: bool = False
    # Names (camelCase) of what this update changed, for the audit trail.
    changed_fields: tuple[str, ...] = ()


@event("user")
class UserRoleChanged(Event):
    """An Admin gave a user another role."""

    user_id: str
    role: UserRole
    previous_role: UserRole | None = None


@event("user")
class UserDeleted(Event):
    """A user was (soft) deleted and their tokens revoked."""

    user_id: str
    role: UserRole
