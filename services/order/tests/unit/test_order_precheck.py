"""Pre-order check rules and its HTTP adapters (user service, inventory) with a mock transport."""

from __future__ import annotations

import json

import httpx
import pytest
from order_service.domain import (
    CustomerProfile,
    LineAvailability,
    ProfileIncomplete,
    UnknownAddress,
    UnknownPaymentMethod,
    precheck_outcome,
)
from order_service.precheck import HttpInventory, HttpUserDirectory

pytestmark = pytest.mark.unit

COMPLETE = CustomerProfile(
    user_id="u1",
    is_profile_complete=True,
    address_ids=("a1", "a2"),
    default_address_id="a1",
    payment_method_ids=("pm1", "pm2"),
    default_payment_method_id="pm1",
    preferred_payment_method="pm2",
)
OK = LineAvailability("p1", 2, 5, "available")
SHORT = LineAvailability("p2", 3, 1, "partial", ("p9",))


def test_complete_profile_and_stock_is_ready() -> None:
    result = precheck_outcome(COMPLETE, [OK])
    assert result.ready and result.profile_complete and result.missing == []
    assert result.default_address_id == "a1" and result.preferred_payment_method_id == "pm2"


def test_a_partial_line_is_not_ready_but_the_profile_is_complete() -> None:
    result = precheck_outcome(COMPLETE, [OK, SHORT])
    assert not result.ready and result.profile_complete
    assert result.items[1].alternatives == ("p9",)


@pytest.mark.parametrize(
    ("profile", "missing"),
    [
        (None, ["address", "paymentMethod"]),
        (CustomerProfile(user_id="u1"), ["address", "paymentMethod"]),
        (CustomerProfile(user_id="u1", payment_method_ids=("pm1",)), ["address"]),
        (
            CustomerProfile(user_id="u1", address_ids=("a1",), default_address_id="a1"),
            ["paymentMethod"],
        ),
    ],
)
def test_missing_details(profile: CustomerProfile | None, missing: list[str]) -> None:
    result = precheck_outcome(profile, [OK])
    assert result.missing == missing and not result.ready and not result.profile_complete


def test_preferred_method_falls_back_to_the_default_then_the_first() -> None:
    gone = CustomerProfile(user_id="u", payment_method_ids=("x", "y"), preferred_payment_method="z")
    assert gone.preferred_payment_method_id == "x"
    default = CustomerProfile(
        user_id="u", payment_method_ids=("x", "y"), default_payment_method_id="y"
    )
    assert default.preferred_payment_method_id == "y"


def test_quick_order_uses_the_defaults() -> None:
    assert COMPLETE.checkout(None, None) == ("a1", "pm2")
    assert COMPLETE.checkout("a2", "pm1") == ("a2", "pm1")


def test_checkout_refuses_an_incomplete_profile_or_foreign_ids() -> None:
    with pytest.raises(ProfileIncomplete) as incomplete:
        CustomerProfile(user_id="u1", payment_method_ids=("pm1",)).checkout(None, None)
    assert incomplete.value.missing == ["address"]
    with pytest.raises(UnknownAddress):
        COMPLETE.checkout("elsewhere", None)
    with pytest.raises(UnknownPaymentMethod):
        COMPLETE.checkout(None, "someone-elses")


ME = {
    "userId": "u1",
    "username": "ann",
    "email": "a@x.io",
    "role": "Customer",
    "addresses": [
        {"addressId": "a1", "line1": "1 rue", "city": "Paris", "zip": "75001", "country": "FR"},
        {
            "addressId": "a2",
            "line1": "2 rue",
            "city": "Lyon",
            "zip": "69001",
            "country": "FR",
            "isDefault": True,
        },
    ],
    "preferences": {"partialFulfillment": "accept"},
    "paymentMethods": [{"paymentMethodId": "pm1", "type": "card", "isDefault": True}],
    "flags": {"isProfileComplete": True, "profileCompletionPrompted": False},
}


async def test_user_directory_reads_me_with_the_callers_token() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=ME)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        users = HttpUserDirectory(client, "http://user/")
        profile = await users.profile("u1", "Bearer t")
        assert await users.profile("u1", None) is None
        assert await users.profile("someone-else", "Bearer t") is None
    assert seen[0].url == "http://user/api/v1/users/me"
    assert seen[0].headers["authorization"] == "Bearer t"
    assert profile is not None and profile.missing == []
    assert profile.default_address_id == "a2" and profile.preferred_payment_method_id == "pm1"
    assert profile.partial_fulfillment == "accept"


async def test_user_directory_degrades_to_none_on_errors() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == "Bearer down":
            raise httpx.ConnectError("down")
        return httpx.Response(401, json={})

    async with httpx.AsyncClient(transport=httpx.MockTransport(fail)) as client:
        users = HttpUserDirectory(client, "http://user")
        assert await users.profile("u1", "Bearer down") is None
        assert await users.profile("u1", "Bearer expired") is None


async def test_inventory_availability_maps_each_line() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/internal/availability"
        assert request.headers["x-internal-token"] == "t-1"  # inventory refuses it without
        asked = json.loads(request.content)
        assert asked == {"items": [{"productId": "p1", "quantity": 2}]}
        line = {"productId": "p1", "requested": 2, "available": 0, "status": "unavailable"}
        return httpx.Response(
            200, json={"items": [line | {"alternatives": ["p7"], "exists": True}]}
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        (line,) = await HttpInventory(
            client, "http://inventory", {"X-Internal-Token": "t-1"}
        ).availability([("p1", 2)])
    assert line == LineAvailability("p1", 2, 0, "unavailable", ("p7",), True)
