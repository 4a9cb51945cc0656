"""Wiring of the user service: real adapters by default, fakes when a test passes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pymongo import AsyncMongoClient

from bus.runtime import Bus, ServiceDeps
from kit.auth.signing import SigningKey
from user_service.domain import RegionLookup, offline_region
from user_service.handlers import HANDLERS
from user_service.keys import load_previous_keys, load_signing_key
from user_service.passwords import Passwords
from user_service.settings import UserSettings
from user_service.store import UserStore


@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """What the user service's routes and handlers work with."""

    settings: UserSettings
    signing_key: SigningKey
    # Keys still published in the JWKS (the signing key first, then retired ones).
    public_keys: tuple[SigningKey, ...] = ()
    passwords: Passwords = field(default_factory=Passwords)
    # IP → region; a GeoIP database plugs in here (README, "Region and GeoIP").
    region_lookup: RegionLookup = offline_region

    @property
    def store(self) -> UserStore:
        return UserStore(self.db)


def bootstrap(
    settings: UserSettings,
    *,
    mongo: AsyncMongoClient[Any] | None = None,
    bus: Bus | None = None,
    signing_key: SigningKey | None = None,
) -> Deps:
    """The user service's dependencies; `mongo`/`bus`/`signing_key` replace the real ones."""
    key = signing_key if signing_key is not None else load_signing_key(settings)
    return Deps.wire(
        settings,
        HANDLERS,
        mongo=mongo,
        bus=bus,
        signing_key=key,
        public_keys=(key, *load_previous_keys(settings)),
        passwords=Passwords.from_settings(settings),
    )
