"""The bulk seed (`devkit.seed_users`): seeded customers log in through the API with the shared
password and have complete profiles; events only when asked for."""

from __future__ import annotations

import pytest
from user_service.store import IdentityTaken

from devkit import seed_users as seed
from devkit.bus_testing import eventually
from devkit.user_testing import RunningUser

pytestmark = pytest.mark.integration

API = "/api/v1/users"
PASSWORD = "seeded-password-1"


async def test_seeded_customers_log_in_with_complete_profiles(user: RunningUser) -> None:
    names = seed.usernames(6, tag="t1")
    password_hash = await seed.hash_password(user.deps.passwords, PASSWORD, names[0])
    seeded = await seed.seed_users(user.deps.mongo, user.deps.db, names, password_hash, chunk=4)
    assert [s.username for s in seeded] == names

    for identifier in (seeded[0].username, seeded[5].email):
        login = await user.client.post(
            f"{API}/login", json={"identifier": identifier, "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        me = await user.client.get(
            f"{API}/me", headers={"authorization": f"Bearer {login.json()['accessToken']}"}
        )
        profile = me.json()
        assert profile["role"] == "Customer" and profile["flags"]["isProfileComplete"]
        assert profile["addresses"][0]["isDefault"]
        assert profile["paymentMethods"][0]["last4"] == "4242"
    wrong = await user.client.post(
        f"{API}/login", json={"identifier": names[1], "password": "not-the-password"}
    )
    assert wrong.status_code == 401

    # An import: no event of theirs in the outbox but the UserLoggedIn of the logins above.
    ids = [s.user_id for s in seeded]
    types = await user.deps.db["outbox"].distinct("type", {"correlation_id": {"$in": ids}})
    assert types == ["UserLoggedIn"]

    # Taken identities are refused as registration refuses them.
    with pytest.raises(IdentityTaken):
        await seed.seed_users(user.deps.mongo, user.deps.db, names[:1], password_hash)


async def test_seeded_customers_with_events(user: RunningUser) -> None:
    names = seed.usernames(3, tag="t2")
    password_hash = await seed.hash_password(user.deps.passwords, PASSWORD, names[0])
    seeded = await seed.seed_users(user.deps.mongo, user.deps.db, names, password_hash, events=True)
    ids = {s.user_id for s in seeded}
    rows = user.deps.db["outbox"].find({"correlation_id": {"$in": list(ids)}})
    outbox = sorted([(row["type"], row["correlation_id"]) async for row in rows])
    assert outbox == sorted(
        (kind, uid) for uid in ids for kind in ("UserRegistered", "UserProfileUpdated")
    )
    await eventually(
        lambda: len(user.events("UserProfileUpdated")) == 3, what="UserProfileUpdated published"
    )
    profiles = user.events("UserProfileUpdated")
    assert {p["data"]["userId"] for p in profiles} == ids
    assert all(p["data"]["isProfileComplete"] for p in profiles)
