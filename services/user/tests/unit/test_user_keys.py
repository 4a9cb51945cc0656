"""The user service's signing key and the JWKS it publishes."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from pydantic import ValidationError
from pymongo import AsyncMongoClient
from user_service.bootstrap import bootstrap
from user_service.keys import DEV_KEY_FILE, load_signing_key
from user_service.main import create_app
from user_service.settings import UserSettings

from bus.fake import NullBus
from kit.auth.signing import SigningKey, issue_access_token

pytestmark = pytest.mark.unit

JWKS_PATH = "/api/v1/users/.well-known/jwks.json"


def test_local_mode_generates_the_key_once_and_keeps_it(tmp_path: Path) -> None:
    settings = UserSettings(env="dev", keys_dir=tmp_path / "keys")
    first = load_signing_key(settings)
    again = load_signing_key(settings)
    assert first.kid == again.kid
    stored = tmp_path / "keys" / DEV_KEY_FILE
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert [p.name for p in stored.parent.iterdir()] == [DEV_KEY_FILE]


def test_a_configured_pem_file_wins(tmp_path: Path) -> None:
    key = SigningKey.generate()
    pem = tmp_path / "key.pem"
    pem.write_bytes(key.private_pem())
    settings = UserSettings(env="dev", jwt_private_key_path=pem, keys_dir=tmp_path / "keys")
    assert load_signing_key(settings).kid == key.kid
    assert not (tmp_path / "keys").exists()


def test_tests_get_a_fresh_key_and_write_nothing(tmp_path: Path) -> None:
    settings = UserSettings(env="test", keys_dir=tmp_path / "keys")
    assert load_signing_key(settings).kid != load_signing_key(settings).kid
    assert not (tmp_path / "keys").exists()


def test_production_requires_a_key_file() -> None:
    # Otherwise safe production settings: the missing key file is what is refused.
    safe = {
        "mongo_url": "mongodb://user:m0ng0-pw@mongo:27017/?replicaSet=rs0",
        "amqp_url": "amqp://shop:r4bb1t-pw@rabbitmq:5672/",
        "internal_token": "i-7d2e9a41c0",
    }
    with pytest.raises(ValidationError, match="USER_JWT_PRIVATE_KEY_PATH"):
        UserSettings(env="prod", **safe)


async def test_jwks_publishes_the_public_key_only() -> None:
    key = SigningKey.generate()
    settings = UserSettings(env="test")
    app = create_app(settings)
    mongo: AsyncMongoClient[Any] = AsyncMongoClient("mongodb://127.0.0.1:1", connect=False)
    app.state.deps = bootstrap(settings, mongo=mongo, bus=NullBus(), signing_key=key)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://user") as client:
        response = await client.get(JWKS_PATH)
    assert response.status_code == 200
    assert response.headers["cache-control"].startswith("public")
    (jwk,) = response.json()["keys"]
    assert jwk == key.public_jwk()
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)
    # a token signed with the key verifies against the published JWK
    token = issue_access_token(key, "u1", "Customer", "shop-user", "shop")
    public = jwt.PyJWK(jwk, algorithm="RS256").key
    claims = jwt.decode(token, public, algorithms=["RS256"], audience="shop")
    assert claims["sub"] == "u1"
    assert JWKS_PATH in app.openapi()["paths"]


async def test_jwks_keeps_retired_keys_during_a_rotation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    current, old, older = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    paths = []
    for name, key in (("current", current), ("old", old), ("older", older)):
        path = tmp_path / f"{name}.pem"
        path.write_bytes(key.private_pem())
        paths.append(path)
    monkeypatch.setenv("USER_JWT_PRIVATE_KEY_PATH", str(paths[0]))
    monkeypatch.setenv("USER_JWT_PREVIOUS_KEY_PATHS", f"{paths[1]},{paths[2]}")
    settings = UserSettings(env="test")
    app = create_app(settings)
    mongo: AsyncMongoClient[Any] = AsyncMongoClient("mongodb://127.0.0.1:1", connect=False)
    app.state.deps = bootstrap(settings, mongo=mongo, bus=NullBus())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://user") as client:
        kids = [k["kid"] for k in (await client.get(JWKS_PATH)).json()["keys"]]
    assert kids == [current.kid, old.kid, older.kid]
    assert app.state.deps.signing_key.kid == current.kid
