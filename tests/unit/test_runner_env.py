"""The local runner wires every service-to-service URL to the port block it chose.

A service that reaches another one over HTTP has a `*_url` setting defaulting to the standard
port (8001…); under another `SHOP_PORT_BASE` (tests, a second `make run`) that default points at
the wrong process. Every such setting must be in the children's environment, at the right port.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from kit.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from runner.config import SERVICE_NAMES, SERVICES, child_env, parse_args  # noqa: E402

pytestmark = pytest.mark.unit

PORTS = {f"http://127.0.0.1:{8000 + offset}": name for name, offset in SERVICES}


def settings_class(service: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"{service}_service.settings")
    return next(
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, ServiceSettings)
        and value is not ServiceSettings
        and value.__module__ == module.__name__
    )


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_every_peer_url_setting_follows_the_port_base(service: str) -> None:
    config = parse_args([], env={"SHOP_PORT_BASE": "31000"})
    env = child_env(config, "mongodb://127.0.0.1:1/")
    cls = settings_class(service)
    prefix = str(cls.model_config.get("env_prefix", ""))
    for name, field in cls.model_fields.items():
        peer = PORTS.get(str(field.default))
        if not name.endswith("_url") or peer is None or peer == "gateway":
            continue
        variable = f"{prefix}{name}".upper()
        assert env.get(variable) == config.url(peer), f"{variable} is not passed to {service}"


def test_services_serialise_transactions_only_on_the_embedded_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MONGO_SERIAL_TRANSACTIONS", raising=False)
    embedded = parse_args([], env={})
    assert child_env(embedded, "mongodb://127.0.0.1:1/")["MONGO_SERIAL_TRANSACTIONS"] == "1"
    real = parse_args([], env={"MONGO_URL": "mongodb://db:27017/?replicaSet=rs0"})
    assert "MONGO_SERIAL_TRANSACTIONS" not in child_env(real, "mongodb://db:27017/?replicaSet=rs0")
