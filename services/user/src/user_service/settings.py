"""Settings of the user service: shared fields from kit, its own under `USER_`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Self

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from kit.settings import ServiceSettings

# OWASP Password Storage Cheat Sheet, argon2id minimum: m=19 MiB, t=2, p=1.
OWASP_MIN_MEMORY_KIB = 19 * 1024
OWASP_MIN_TIME_COST = 2


def _plain(name: str) -> AliasChoices:
    return AliasChoices(name)


class UserSettings(ServiceSettings):
    """The user service's settings (`USER_PORT`, …)."""

    model_config = SettingsConfigDict(env_prefix="USER_")

    service_name: ClassVar[str] = "user"
    port: int = 8001

    # PEM file of the RS256 signing key (USER_JWT_PRIVATE_KEY_PATH). Required with SHOP_ENV=prod;
    # in dev one is generated once under `keys_dir` so that restarts keep tokens valid, in test
    # one is generated in memory per process.
    jwt_private_key_path: Path | None = None
    # Retired keys still published in the JWKS during a rotation (comma-separated PEM paths), so
    # tokens they signed stay valid until they expire (USER_JWT_PREVIOUS_KEY_PATHS).
    jwt_previous_key_paths: Annotated[tuple[Path, ...], NoDecode] = ()
    keys_dir: Path = Path(".run/keys")  # USER_KEYS_DIR
    access_token_minutes: int = Field(15, ge=1)
    refresh_token_days: int = Field(30, ge=1)

    # argon2id cost (RFC 9106's second recommendation; ~0.1 s on one core). Tests lower it;
    # anything below OWASP's minimum is refused outside tests. Stored hashes made with other
    # parameters are rehashed at the next successful login.
    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_kib: int = Field(65536, ge=8)
    argon2_parallelism: int = Field(4, ge=1)

    # api.md: per client IP, 300 requests/min on check, register and login → 429 RATE_LIMITED.
    ip_rate_limit: int = Field(300, ge=1)
    ip_rate_window_seconds: int = Field(60, ge=1)
    # api.md: per account, 5 failed logins within 15 min → 429 TOO_MANY_ATTEMPTS until 15 min
    # after the last failure. Per IP the same rule with a higher count (one IP, many accounts).
    login_max_failures: int = Field(5, ge=1)
    login_ip_max_failures: int = Field(50, ge=1)
    login_failure_window_seconds: int = Field(900, ge=1)
    lockout_seconds: int = Field(900, ge=1)

    # Bootstrap accounts, created idempotently at start-up (plain names: the runner passes them).
    admin_email: str | None = Field(None, validation_alias=_plain("SHOP_ADMIN_EMAIL"))
    # Optional, so not SecretStr: kit refuses an unset SecretStr in prod. repr=False keeps them
    # out of logs and error messages all the same.
    admin_password: str | None = Field(
        None, validation_alias=_plain("SHOP_ADMIN_PASSWORD"), repr=False
    )
    manager_email: str | None = Field(None, validation_alias=_plain("SHOP_MANAGER_EMAIL"))
    manager_password: str | None = Field(
        None, validation_alias=_plain("SHOP_MANAGER_PASSWORD"), repr=False
    )

    @model_validator(mode="before")
    @classmethod
    def _split_paths(cls, data: object) -> object:
        if isinstance(data, dict):
            raw = data.get("jwt_previous_key_paths")
            if isinstance(raw, str):
                data["jwt_previous_key_paths"] = tuple(p for p in raw.split(",") if p.strip())
        return data

    @model_validator(mode="after")
    def _key_in_production(self) -> Self:
        if self.env == "prod" and self.jwt_private_key_path is None:
            raise ValueError("USER_JWT_PRIVATE_KEY_PATH is required when SHOP_ENV=prod")
        return self

    @model_validator(mode="after")
    def _argon2_minimum(self) -> Self:
        weak = (
            self.argon2_memory_kib < OWASP_MIN_MEMORY_KIB
            or self.argon2_time_cost < OWASP_MIN_TIME_COST
        )
        if weak and self.env != "test":
            raise ValueError("argon2 parameters below OWASP's minimum (m=19 MiB, t=2, p=1)")
        return self
