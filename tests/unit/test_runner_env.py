"""The local runner wires every service-to-service URL to the port block it chose.

A service that reaches another one over HTTP has a `*_url` setting defaulting to the standard
port (8001…); under another `SHOP_PORT_BASE` (tests, a second `make run`) that default points at
the wrong process. Every such setting must be in the children's environment, at the right port.
"""

from __future__ import annotations

import importlib
import stat
import sys
from pathlib import Path

import pytest

from kit.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from runner.accounts import VARIABLES, local_accounts  # noqa: E402
from runner.checks import banner  # noqa: E402
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


def test_a_dev_run_generates_an_admin_and_a_manager_once_into_an_owner_only_file(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    first = local_accounts(run_dir, {}, generate=True)
    assert first is not None and first.file == run_dir / "accounts.env"
    assert stat.S_IMODE(first.file.stat().st_mode) == 0o600
    assert [a.role for a in first.accounts] == ["Admin", "Manager"]
    assert set(first.env) == set(VARIABLES)
    passwords = [a.generated_password for a in first.accounts]
    assert all(p and len(p) >= 20 for p in passwords) and passwords[0] != passwords[1]

    # The next run finds the same accounts (a persistent Mongo keeps them working), even after
    # someone loosened the file's mode.
    first.file.chmod(0o644)
    again = local_accounts(run_dir, {}, generate=True)
    assert again == first
    assert stat.S_IMODE(first.file.stat().st_mode) == 0o600

    config = parse_args([], env={})
    text = "\n".join(banner(config, "mongodb://127.0.0.1:1/", 1.0, again))
    for account in again.accounts:
        assert f"{account.role:<8} {account.email}  {account.generated_password}" in text
    assert str(first.file) in text


def test_the_environment_s_accounts_win_and_their_passwords_are_not_printed(
    tmp_path: Path,
) -> None:
    environ = {
        "SHOP_ADMIN_EMAIL": "boss@example.com",
        "SHOP_ADMIN_PASSWORD": "the-admins-own-password",
    }
    mixed = local_accounts(tmp_path, environ, generate=True)
    assert mixed is not None
    assert mixed.env["SHOP_ADMIN_EMAIL"] == "boss@example.com"
    assert mixed.env["SHOP_ADMIN_PASSWORD"] == "the-admins-own-password"
    admin, manager = mixed.accounts
    assert admin.generated_password is None and manager.generated_password
    text = "\n".join(mixed.banner())
    assert "the-admins-own-password" not in text and "SHOP_ADMIN_PASSWORD" in text

    complete = environ | {
        "SHOP_MANAGER_EMAIL": "lead@example.com",
        "SHOP_MANAGER_PASSWORD": "the-managers-own-password",
    }
    given = local_accounts(tmp_path / "none", complete, generate=False)
    assert given is not None and given.file is None and given.env == complete
    assert not (tmp_path / "none").exists()
    # Outside dev nothing is generated: the runner tells how to name them instead.
    assert local_accounts(tmp_path / "prod", {}, generate=False) is None
    assert not (tmp_path / "prod").exists()
