"""Settings: plain env names for shared fields, the service prefix for its own, safe secrets."""

from __future__ import annotations

from typing import ClassVar

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from kit.settings import ServiceSettings, secret_field

pytestmark = pytest.mark.unit


class OrderSettings(ServiceSettings):
    service_name: ClassVar[str] = "order"
    model_config = SettingsConfigDict(env_prefix="ORDER_")
    port: int = 8003
    approval_threshold_cents: int = 500_000
    signing_secret: SecretStr = SecretStr("changeme")
    webhook_token: str = secret_field("changeme")


SHARED = (
    "SHOP_ENV MONGO_URL MONGO_DB DB_PREFIX AMQP_URL BUS_PREFIX BUS_RETRY_DELAYS BUS_MAX_ATTEMPTS "
    "JWKS_URL JWT_ISSUER JWT_AUDIENCE OTEL_EXPORTER_OTLP_ENDPOINT LOG_LEVEL LOG_FORMAT "
    "INTERNAL_TOKEN PORT HOST ACCESS_LOG"
).split()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SHARED:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"ORDER_{name}", raising=False)


def test_defaults() -> None:
    s = OrderSettings()
    assert s.env == "dev"
    assert s.mongo_url == "mongodb://127.0.0.1:27017/?directConnection=true"
    assert s.amqp_url == "amqp://guest:guest@127.0.0.1:5672/"
    assert s.bus_retry_delays == (1.0, 10.0, 60.0)
    assert s.bus_max_attempts == 4
    assert s.jwks_url == "http://127.0.0.1:8001/api/v1/users/.well-known/jwks.json"
    assert (s.jwt_issuer, s.jwt_audience) == ("shop-user", "shop")
    assert s.otel_exporter_otlp_endpoint is None
    assert (s.host, s.port) == ("127.0.0.1", 8003)
    assert s.database_name == s.mongo_db == "order"


def test_shared_fields_read_plain_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGO_URL", "mongodb://db:27017/")
    monkeypatch.setenv("AMQP_URL", "amqp://u:p@mq:5672/")
    monkeypatch.setenv("BUS_PREFIX", "t1.")
    monkeypatch.setenv("BUS_RETRY_DELAYS", "0.1, 0.5,2")
    monkeypatch.setenv("SHOP_ENV", "test")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318")
    monkeypatch.setenv("DB_PREFIX", "t_")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    # The prefixed spelling of a shared field is not read.
    monkeypatch.setenv("ORDER_MONGO_URL", "mongodb://wrong/")
    s = OrderSettings()
    assert s.mongo_url == "mongodb://db:27017/"
    assert s.amqp_url == "amqp://u:p@mq:5672/"
    assert s.bus_prefix == "t1."
    assert s.bus_retry_delays == (0.1, 0.5, 2.0)
    assert s.env == "test"
    assert s.otel_exporter_otlp_endpoint == "http://jaeger:4318"
    assert s.database_name == "t_order"
    assert s.log_level == "DEBUG"


def test_service_fields_read_the_service_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDER_PORT", "9103")
    monkeypatch.setenv("ORDER_APPROVAL_THRESHOLD_CENTS", "100")
    monkeypatch.setenv("ORDER_MONGO_DB", "orders_x")
    monkeypatch.setenv("PORT", "1")  # not ours
    s = OrderSettings()
    assert s.port == 9103
    assert s.approval_threshold_cents == 100
    assert s.database_name == "orders_x"


def test_constructor_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGO_URL", "mongodb://env/")
    s = OrderSettings(mongo_url="mongodb://arg/", port=1)
    assert (s.mongo_url, s.port) == ("mongodb://arg/", 1)


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_ENV", "staging")
    with pytest.raises(ValidationError):
        OrderSettings()
    monkeypatch.setenv("SHOP_ENV", "dev")
    monkeypatch.setenv("BUS_RETRY_DELAYS", "1,-1")
    with pytest.raises(ValidationError):
        OrderSettings()


SAFE_PROD = {
    "MONGO_URL": "mongodb://order:m0ng0-pw@mongo:27017/?replicaSet=rs0",
    "AMQP_URL": "amqp://shop:r4bb1t-pw@rabbitmq:5672/",
    "INTERNAL_TOKEN": "i-7d2e9a41c0",
}


def test_placeholder_secrets_are_refused_in_prod(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(OrderSettings.secret_fields()) == {
        "signing_secret",
        "webhook_token",
        "internal_token",
    }
    OrderSettings()  # dev: placeholders are fine
    for name, value in SAFE_PROD.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SHOP_ENV", "prod")
    with pytest.raises(ValidationError) as excinfo:
        OrderSettings()
    assert "signing_secret" in str(excinfo.value)
    assert "changeme" not in str(excinfo.value)  # the value itself is not repeated
    monkeypatch.setenv("ORDER_SIGNING_SECRET", "s3cr3t-from-the-vault")
    with pytest.raises(ValidationError):
        OrderSettings()  # webhook_token still a placeholder
    for placeholder in ("secret", "", " ChangeMe "):
        monkeypatch.setenv("ORDER_WEBHOOK_TOKEN", placeholder)
        with pytest.raises(ValidationError):
            OrderSettings()
    monkeypatch.setenv("ORDER_WEBHOOK_TOKEN", "w-6f1c0e")
    assert OrderSettings().env == "prod"


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("AMQP_URL", "amqp://guest:guest@rabbitmq:5672/", "AMQP_URL"),
        ("AMQP_URL", "amqp://rabbitmq:5672/", "AMQP_URL"),
        ("AMQP_URL", "amqp://shop:changeme@rabbitmq:5672/", "AMQP_URL"),
        ("MONGO_URL", "mongodb://mongo:27017/?replicaSet=rs0", "MONGO_URL"),
        ("MONGO_URL", "mongodb://order@mongo:27017/", "MONGO_URL"),
        ("MONGO_URL", "mongodb://order:changeme@mongo:27017/", "MONGO_URL"),
        ("INTERNAL_TOKEN", "", "internal_token"),
    ],
)
def test_production_refuses_unsafe_connections(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, named: str
) -> None:
    for key, safe in SAFE_PROD.items():
        monkeypatch.setenv(key, safe)
    monkeypatch.setenv("ORDER_SIGNING_SECRET", "s3cr3t-from-the-vault")
    monkeypatch.setenv("ORDER_WEBHOOK_TOKEN", "w-6f1c0e")
    monkeypatch.setenv("SHOP_ENV", "prod")
    assert OrderSettings().env == "prod"  # the safe set starts
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as excinfo:
        OrderSettings()
    message = str(excinfo.value)
    assert named in message  # says which setting is wrong
    password = value.partition("@")[0].rpartition(":")[2] if "@" in value else ""
    if password and password != "guest":
        assert password not in message  # never the secret itself
    monkeypatch.setenv("SHOP_ENV", "dev")
    assert OrderSettings().env == "dev"  # local mode keeps guest and the embedded Mongo


def test_access_log_is_on_in_dev_and_test_and_off_in_prod(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert OrderSettings(env="dev").access_log is True
    assert OrderSettings(env="test").access_log is True
    monkeypatch.setenv("ACCESS_LOG", "false")
    assert OrderSettings(env="dev").access_log is False
    for name, value in SAFE_PROD.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ORDER_SIGNING_SECRET", "s3cr3t-from-the-vault")
    monkeypatch.setenv("ORDER_WEBHOOK_TOKEN", "w-6f1c0e")
    monkeypatch.setenv("SHOP_ENV", "prod")
    monkeypatch.delenv("ACCESS_LOG")
    assert OrderSettings().access_log is False
    monkeypatch.setenv("ACCESS_LOG", "true")
    assert OrderSettings().access_log is True
