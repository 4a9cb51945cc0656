"""The seeders' own settings: the shared password of the user seed is a setting of devkit's
(`SEED_PASSWORD` or `--password`), not an environment read; nothing is seeded without one."""

from __future__ import annotations

import pytest

from devkit import seed_catalogue, seed_users

pytestmark = pytest.mark.unit


def test_the_seed_password_comes_from_the_settings_or_the_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SEED_PASSWORD", "from-the-environment-1")
    assert seed_users.SeedUserSettings().seed_password.get_secret_value() == (
        "from-the-environment-1"
    )
    given = seed_users.SeedUserSettings(seed_password="from-the-flag-1")
    assert given.seed_password.get_secret_value() == "from-the-flag-1"
    assert "from-the" not in repr(given)  # a secret: never printed


async def test_no_password_no_seeding(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SEED_PASSWORD", raising=False)
    # An unreachable Mongo: the seeder must stop before it connects.
    args = seed_users.parse(["--count", "3", "--mongo-url", "mongodb://127.0.0.1:1/"])
    assert await seed_users.main_async(args) == 2
    assert "SEED_PASSWORD or --password is required" in capsys.readouterr().out


def test_the_catalogue_seeder_does_the_demo_or_a_count() -> None:
    assert seed_catalogue.parse(["--demo"]).demo
    assert seed_catalogue.parse(["--count", "5"]).count == 5
    for argv in ([], ["--demo", "--count", "5"]):
        with pytest.raises(SystemExit):
            seed_catalogue.parse(argv)
