"""The internal payment-method lookup the payment service uses (never routed by the gateway)."""

from __future__ import annotations

import pytest

from devkit.user_testing import RunningUser
from kit.internal import INTERNAL_TOKEN_HEADER, internal_headers

from .test_user_journey import API, bearer, register

pytestmark = pytest.mark.integration


async def test_payment_method_token_for_its_owner_and_internal_callers_only(
    user: RunningUser,
) -> None:
    client = user.client
    ann = await register(client, "ann_pm")
    bob = await register(client, "bob_pm")
    details = await client.post(
        f"{API}/me/details",
        json={"paymentMethods": [{"type": "card", "token": "pm_card_flaky"}]},
        headers=bearer(ann["accessToken"]),
    )
    assert details.status_code == 200, details.text
    (method,) = details.json()["paymentMethods"]
    method_id = method["paymentMethodId"]

    path = f"/internal/users/{ann['userId']}/payment-methods/{method_id}"
    for credential in ({}, {INTERNAL_TOKEN_HEADER: "guessed"}, bearer(ann["accessToken"])):
        refused = await client.get(path, headers=credential)
        assert refused.status_code == 401, (credential, refused.text)
        assert refused.json()["code"] == "UNAUTHENTICATED"
        assert "pm_card" not in refused.text
    internal = internal_headers(user.app.state.settings)
    own = await client.get(path, headers=internal)
    assert own.status_code == 200, own.text
    body = own.json()
    assert body["paymentMethodId"] == method_id and body["token"] == "pm_card_flaky"
    assert (body["brand"], body["last4"]) == ("mastercard", "4444")

    others = await client.get(
        f"/internal/users/{bob['userId']}/payment-methods/{method_id}", headers=internal
    )
    assert others.status_code == 404
    assert others.json()["code"] == "PAYMENT_METHOD_NOT_FOUND"
    unknown = await client.get(
        f"/internal/users/nobody/payment-methods/{method_id}", headers=internal
    )
    assert unknown.status_code == 404
