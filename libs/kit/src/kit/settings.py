"""The one settings pattern every service uses (style.md habit 10).

`ServiceSettings` holds what every service needs. Shared fields read PLAIN environment names
(`MONGO_URL`, `AMQP_URL`, `SHOP_ENV`, …) through `validation_alias`, which pydantic-settings
resolves without the `env_prefix`; so one environment configures every service the same way. A
service subclass adds its own fields under its prefix:

    class OrderSettings(ServiceSettings):
        service_name: ClassVar[str] = "order"
        model_config = SettingsConfigDict(env_prefix="ORDER_")
        port: int = 8003                        # ORDER_PORT
        approval_threshold_cents: int = 500000  # ORDER_APPROVAL_THRESHOLD_CENTS

Fields holding secrets are typed `SecretStr` (or marked with `secret_field()`); outside `dev` and
`test`, that is with `SHOP_ENV=prod`, a service does not start with a placeholder secret
("changeme", "secret", ""), a Mongo URL without credentials, or the broker's `guest` account: the
error names each setting that is wrong (never its value). This module is the only place in kit
that reads the environment.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

type Environment = Literal["dev", "test", "prod"]
type LogFormat = Literal["json", "console"]

DEFAULT_MONGO_URL = "mongodb://127.0.0.1:27017/?directConnection=true"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_JWKS_URL = "http://127.0.0.1:8001/api/v1/users/.well-known/jwks.json"

# Values that mean "nobody set this": refused for secret fields when SHOP_ENV=prod.
PLACEHOLDER_SECRETS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "secret",
        "password",
        "default",
        "example",
        "test",
        "dev",
        "todo",
        "xxx",
        "admin",
    }
)


class InsecureSettingsError(ValueError):
    """A secret setting still holds a placeholder in production."""


def secret_field(default: Any = "", **kwargs: Any) -> Any:
    """A `Field` marked as secret (for `str` fields that cannot be `SecretStr`)."""
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra["secret"] = True
    return Field(default, json_schema_extra=extra, **kwargs)


def _plain(name: str) -> Any:
    # A validation alias is read without the env_prefix; `populate_by_name` keeps the Python
    # name usable as a constructor keyword (tests build settings directly).
    return AliasChoices(name)


def split_csv(value: Any) -> Any:
    """A comma-separated environment value as a tuple of its non-empty parts (others as given)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class ServiceSettings(BaseSettings):
    """Settings shared by every service; subclass it with `service_name` and an `env_prefix`."""

    service_name: ClassVar[str] = "service"

    model_config = SettingsConfigDict(
        env_prefix="",
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
        hide_input_in_errors=True,  # a refused secret must not appear in the error message
    )

    env: Environment = Field("dev", validation_alias=_plain("SHOP_ENV"))
    host: str = "127.0.0.1"  # <PREFIX>HOST: a plain HOST is set by some shells (zsh)
    port: int = 8000  # <PREFIX>PORT; each service sets its own default

    mongo_url: str = Field(DEFAULT_MONGO_URL, validation_alias=_plain("MONGO_URL"))
    # <PREFIX>MONGO_DB; when unset, DB_PREFIX + service name (architecture: database = service).
    mongo_db: str | None = None
    db_prefix: str = Field("", validation_alias=_plain("DB_PREFIX"))

    amqp_url: str = Field(DEFAULT_AMQP_URL, validation_alias=_plain("AMQP_URL"))
    bus_prefix: str = Field("", validation_alias=_plain("BUS_PREFIX"))
    bus_retry_delays: Annotated[tuple[float, ...], NoDecode] = Field(
        (1.0, 10.0, 60.0), validation_alias=_plain("BUS_RETRY_DELAYS")
    )
    bus_max_attempts: int = Field(4, ge=1, validation_alias=_plain("BUS_MAX_ATTEMPTS"))
    # A publish the broker does not confirm within this many seconds fails (a blocked broker).
    bus_publish_timeout: float = Field(30.0, gt=0, validation_alias=_plain("BUS_PUBLISH_TIMEOUT"))
    # Dead letters are redriven or discarded within this many days; the inbox remembers events
    # longer than that plus the outbox retention (bus.inbox).
    bus_dlq_residency_days: float = Field(
        14.0, gt=0, validation_alias=_plain("BUS_DLQ_RESIDENCY_DAYS")
    )
    # Fault tests only (tests/chaos): the crash points where the process SIGKILLs itself,
    # comma-separated (`consumer.after_commit`, `relay.before_publish`: bus.config). Refused
    # unless SHOP_ENV is dev or test.
    bus_crash_at: Annotated[tuple[str, ...], NoDecode] = Field(
        (), validation_alias=_plain("BUS_CRASH_AT")
    )

    # MONGO_SERIAL_TRANSACTIONS=1: this process runs its transactions one at a time
    # (kit.transactions; the service lifespan applies it). For the embedded server, which
    # conflicts any two overlapping write transactions; not for a real MongoDB.
    mongo_serial_transactions: bool = Field(
        False, validation_alias=_plain("MONGO_SERIAL_TRANSACTIONS")
    )

    jwks_url: str = Field(DEFAULT_JWKS_URL, validation_alias=_plain("JWKS_URL"))
    jwt_issuer: str = Field("shop-user", validation_alias=_plain("JWT_ISSUER"))
    jwt_audience: str = Field("shop", validation_alias=_plain("JWT_AUDIENCE"))
    # Seconds a verifier keeps the JWKS before it fetches it again: a key the user service
    # stops publishing stops verifying within this time (api.md: at most 5 min).
    jwks_ttl_seconds: float = Field(
        300.0, gt=0, le=300, validation_alias=_plain("JWKS_TTL_SECONDS")
    )

    # Where a process learns of revoked tokens (kit.auth.revocation), polled this often; unset:
    # the `/internal/users/token-versions` route of the host serving JWKS_URL (the user service).
    token_versions_url: str | None = Field(None, validation_alias=_plain("TOKEN_VERSIONS_URL"))
    token_versions_poll_seconds: float = Field(
        2.0, gt=0, le=4, validation_alias=_plain("TOKEN_VERSIONS_POLL_SECONDS")
    )
    # Distinct bearer tokens a process keeps verified until their expiry (kit.auth.verify): the
    # signature check is skipped for a token seen before, revocation is checked every time.
    # 0: verify every request from scratch.
    token_cache_size: int = Field(4096, ge=0, validation_alias=_plain("TOKEN_CACHE_SIZE"))

    otel_exporter_otlp_endpoint: str | None = Field(
        None, validation_alias=_plain("OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    log_level: str = Field("INFO", validation_alias=_plain("LOG_LEVEL"))
    log_format: LogFormat = Field("json", validation_alias=_plain("LOG_FORMAT"))
    # uvicorn's line per HTTP request (ACCESS_LOG=true/false). Unset: on in dev and test, where
    # someone reads `make run`'s output; off with SHOP_ENV=prod, where a line per request (and
    # per token-version poll of every process) is most of the log volume and its CPU, and the
    # request metrics and traces already tell what was asked and answered.
    access_log: bool | None = Field(None, validation_alias=_plain("ACCESS_LOG"))

    # The credential the gateway and the services present to each other (kit.internal): it
    # opens `/internal/*` routes and makes the gateway's client address believed. Empty: nobody.
    internal_token: SecretStr = Field(SecretStr(""), validation_alias=_plain("INTERNAL_TOKEN"))
    # Request bodies above this many bytes answer 413 PAYLOAD_TOO_LARGE.
    max_body_bytes: int = Field(1_048_576, ge=1, validation_alias=_plain("MAX_BODY_BYTES"))

    @field_validator("bus_retry_delays", "bus_crash_at", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return split_csv(value)

    @field_validator("bus_retry_delays")
    @classmethod
    def _positive_delays(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(delay <= 0 for delay in value):
            raise ValueError("BUS_RETRY_DELAYS must be positive seconds, comma-separated")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _derive_and_check(self) -> Self:
        if not self.mongo_db:
            self.mongo_db = f"{self.db_prefix}{self.service_name}"
        if self.access_log is None:
            self.access_log = self.env != "prod"
        if self.bus_crash_at and self.env not in ("dev", "test"):
            raise ValueError("BUS_CRASH_AT (fault tests) is refused unless SHOP_ENV is dev or test")
        if self.env == "prod":
            problems = [
                f"{name}: a placeholder secret"
                for name in sorted(self.secret_fields())
                if self._is_placeholder(name)
            ]
            problems += unsafe_urls(self.mongo_url, self.amqp_url)
            if problems:
                raise InsecureSettingsError(
                    "unsafe settings are refused when SHOP_ENV=prod: " + "; ".join(problems)
                )
        return self

    @property
    def database_name(self) -> str:
        """The service's Mongo database (`mongo_db`, else DB_PREFIX + service name)."""
        return self.mongo_db or f"{self.db_prefix}{self.service_name}"

    @classmethod
    def secret_fields(cls) -> list[str]:
        """Names of the fields that hold secrets (`SecretStr` or `secret_field()`)."""
        return [name for name, info in cls.model_fields.items() if _is_secret(info)]

    def _is_placeholder(self, name: str) -> bool:
        value = getattr(self, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is None:
            return True
        return str(value).strip().lower() in PLACEHOLDER_SECRETS


def unsafe_urls(mongo_url: str, amqp_url: str) -> list[str]:
    """What production refuses in the connection URLs: no Mongo credentials, the broker's
    well-known `guest` account or a placeholder password (each named, never the value)."""
    problems: list[str] = []
    mongo = urlsplit(mongo_url)
    if not mongo.username or not mongo.password:
        problems.append("MONGO_URL: no credentials (user:password@)")
    elif mongo.password.strip().lower() in PLACEHOLDER_SECRETS:
        problems.append("MONGO_URL: a placeholder password")
    amqp = urlsplit(amqp_url)
    if amqp.username in (None, "", "guest") or not amqp.password:
        problems.append("AMQP_URL: the broker's guest account or no credentials")
    elif amqp.password.strip().lower() in PLACEHOLDER_SECRETS | {"guest"}:
        problems.append("AMQP_URL: a placeholder password")
    return problems


def _is_secret(info: FieldInfo) -> bool:
    extra = info.json_schema_extra
    if isinstance(extra, dict) and extra.get("secret") is True:
        return True
    annotation = info.annotation
    if annotation is SecretStr:
        return True
    return SecretStr in getattr(annotation, "__args__", ())
