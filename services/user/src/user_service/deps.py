"""What the user service's commands work with (`Deps`), and how routes and handlers get it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends

from bus import HandlerContext
from bus.runtime import ServiceDeps, app_deps
from kit.auth.signing import SigningKey
from user_service.domain import RegionLookup, offline_region
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


# Routes take `deps: DepsDep` (style.md habit 9); handlers get it as `ctx.deps`.
DepsDep = Annotated[Deps, Depends(app_deps(Deps))]
type Context = HandlerContext[Deps]
