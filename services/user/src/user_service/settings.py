"""Settings of the user service: shared fields from kit, its own under `USER_`."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

from pydantic import model_validator
from pydantic_settings import SettingsConfigDict

from kit.settings import ServiceSettings


class UserSettings(ServiceSettings):
    """The user service's settings (`USER_PORT`, …)."""

    model_config = SettingsConfigDict(env_prefix="USER_")

    service_name: ClassVar[str] = "user"
    port: int = 8001

    # PEM file of the RS256 signing key (USER_JWT_PRIVATE_KEY_PATH). Required with SHOP_ENV=prod;
    # in dev one is generated once under `keys_dir` so that restarts keep tokens valid, in test
    # one is generated in memory per process.
    jwt_private_key_path: Path | None = None
    keys_dir: Path = Path(".run/keys")  # USER_KEYS_DIR

    @model_validator(mode="after")
    def _key_in_production(self) -> Self:
        if self.env == "prod" and self.jwt_private_key_path is None:
            raise ValueError("USER_JWT_PRIVATE_KEY_PATH is required when SHOP_ENV=prod")
        return self
