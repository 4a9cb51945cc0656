"""The token-version feed every process polls (kit.auth.revocation): internal only, bumped in the
same write as a role change, a disable or a delete, and followed with its cursor."""

from __future__ import annotations

from typing import Any

import pytest

from devkit.user_testing import RunningUser
from kit.internal import internal_headers

pytestmark = pytest.mark.integration

API = "/api/v1/users"
FEED = "/internal/users/token-versions"
ADMIN = {"identifier": "root@example.com", "password": "admin-password-1"}


async def feed(user: RunningUser, since: str | None = None) -> dict[str, Any]:
    params = {"since": since} if since else {}
    response = await user.client.get(
        FEED, params=params, headers=internal_headers(user.deps.settings)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_feed_needs_the_internal_credential(user: RunningUser) -> None:
    assert (await user.client.get(FEED)).status_code == 401


async def test_role_changes_disables_and_deletes_move_the_version(user: RunningUser) -> None:
    login = await user.client.post(f"{API}/login", json=ADMIN)
    admin = {"authorization": f"Bearer {login.json()['accessToken']}"}
    ids = []
    for name in ("pat", "quinn", "rory"):
        created = await user.client.post(
            f"{API}/register",
            json={"username": name, "email": f"{name}@example.com", "password": "long-enough-pw"},
        )
        ids.append(created.json()["userId"])
    first = await feed(user)
    assert first["items"] == []

    demoted, disabled, deleted = ids
    patched = await user.client.patch(f"{API}/{demoted}", json={"role": "Manager"}, headers=admin)
    assert patched.status_code == 200
    off = await user.client.patch(f"{API}/{disabled}", json={"disabled": True}, headers=admin)
    assert off.status_code == 200
    assert (await user.client.delete(f"{API}/{deleted}", headers=admin)).status_code == 204
    phone = await user.client.patch(f"{API}/{demoted}", json={"phone": "555"}, headers=admin)
    assert phone.status_code == 200  # not a revocation: the version stays

    changes = await feed(user, first["cursor"])
    versions = {item["userId"]: item["version"] for item in changes["items"]}
    assert versions == {demoted: 1, disabled: 1, deleted: 1}
    # a token issued now carries the new version and is accepted
    relogin = await user.client.post(
        f"{API}/login", json={"identifier": "pat", "password": "long-enough-pw"}
    )
    me = await user.client.get(
        f"{API}/me", headers={"authorization": f"Bearer {relogin.json()['accessToken']}"}
    )
    assert me.status_code == 200 and me.json()["role"] == "Manager"
