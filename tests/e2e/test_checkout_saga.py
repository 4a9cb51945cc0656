"""The checkout saga through the gateway, one branch per test (issue 6's must-show list).

One shop (user, inventory, order, payment and the gateway, on the real broker and Mongo) serves
the whole module; each test makes its own customers and products and ends with the invariants:
every order terminal, stock conserved with nothing left reserved and committed stock equal to
the units confirmed, a capture only for a CONFIRMED order, once, for its total.

Deadlines are not waited for: the sweepers are asked to run as if two days had passed, which is
what they do on their own when the windows close (15 min, 24 h by default).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from order_service.precheck import HttpInventory

from devkit.bus_testing import eventually

from .shop import APPROVAL_THRESHOLD_CENTS, Shop, running_shop

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shop(mongo_url: str, amqp_url: str, run_prefix: str) -> AsyncIterator[Shop]:
    async with running_shop(mongo_url, amqp_url, run_prefix) as running:
        yield running


def steps(timeline: list[dict[str, object]]) -> list[object]:
    return [entry["step"] for entry in timeline]


async def test_first_order_of_a_new_user(shop: Shop) -> None:
    product = await shop.product(stock=5, price_cents=1_250)
    user_id, headers = await shop.register()
    items = {"items": [{"productId": product, "quantity": 2}]}

    check = await shop.client.post("/api/v1/orders/precheck", json=items, headers=headers)
    assert check.status_code == 200, check.text
    assert check.json() == {
        "ready": False,
        "profileComplete": False,
        "missing": ["address", "paymentMethod"],
        "items": [
            {
                "productId": product,
                "requested": 2,
                "available": 5,
                "status": "available",
                "alternatives": [],
            }
        ],
        "defaultAddressId": None,
        "preferredPaymentMethodId": None,
        "promptProfileCompletion": True,
    }
    # Asked once: the second check still lists what is missing, without the prompt hint.
    again = await shop.client.post("/api/v1/orders/precheck", json=items, headers=headers)
    assert again.json()["missing"] == ["address", "paymentMethod"]
    assert again.json()["promptProfileCompletion"] is False
    me = await shop.client.get("/api/v1/users/me", headers=headers)
    assert me.json()["flags"]["profileCompletionPrompted"] is True
    refused = await shop.client.post(
        "/api/v1/orders", json=items, headers={**headers, "Idempotency-Key": "first"}
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "PROFILE_INCOMPLETE"
    assert refused.json()["missing"] == ["address", "paymentMethod"]

    # Completed and ordered at once: the order service must not trust a lagging replica.
    details = {
        "addresses": [
            {
                "label": "flat",
                "line1": "2 Elm St",
                "city": "Oslo",
                "state": "Oslo",
                "zip": "0150",
                "country": "NO",
            }
        ],
        "paymentMethods": [{"type": "card", "token": "pm_card_ok"}],
    }
    completed = await shop.client.post("/api/v1/users/me/details", json=details, headers=headers)
    assert completed.status_code == 200, completed.text
    profile = completed.json()
    check = await shop.client.post("/api/v1/orders/precheck", json=items, headers=headers)
    assert check.json()["ready"] is True
    assert check.json()["defaultAddressId"] == profile["addresses"][0]["addressId"]
    placed = await shop.client.post(
        "/api/v1/orders", json=items, headers={**headers, "Idempotency-Key": "first"}
    )
    assert placed.status_code == 202, placed.text
    assert placed.json()["status"] == "PENDING"
    order_id = placed.json()["orderId"]

    order = await shop.wait_for(order_id, "CONFIRMED")
    assert order["userId"] == user_id
    assert order["totalCents"] == 2_500
    assert order["items"][0] | {"name": ""} == {
        "productId": product,
        "name": "",
        "quantity": 2,
        "priceCents": 1_250,
        "fulfilledQuantity": 2,
    }
    assert order["address"]["city"] == "Oslo"
    assert order["payment"]["status"] == "authorized"
    assert order["payment"]["attempts"] == 1
    assert [a["toStatus"] for a in order["auditLogs"]] == [
        "PENDING",
        "AWAITING_PAYMENT",
        "PAID",
        "CONFIRMED",
    ]
    assert order["auditLogs"][0]["userId"] == user_id
    await shop.check_invariants([order_id], [product])

    async def captured() -> bool:
        return {"paymentCaptured", "shipmentCreated"} <= set(steps(await shop.timeline(order_id)))

    # Both follow CONFIRMED, in either order: payment captures, shipping makes the shipment.
    await eventually(captured, what="the capture and the shipment on the timeline")
    timeline = await shop.timeline(order_id)
    assert steps(timeline).index("shipmentCreated") > steps(timeline).index("confirmed")
    assert [step for step in steps(timeline) if step != "shipmentCreated"] == [
        "place",
        "stockReserved",
        "paymentRequested",
        "paymentAuthorized",
        "paid",
        "stockCommitted",
        "confirmed",
        "paymentCaptured",
    ]
    services = {entry["step"]: entry["service"] for entry in timeline}
    assert services["stockReserved"] == "inventory"
    assert services["paymentAuthorized"] == services["paymentCaptured"] == "payment"
    assert all(entry["eventId"] for entry in timeline)
    placed_event = shop.events("OrderPlaced", order_id)[0]
    assert placed_event["id"] == timeline[0]["eventId"]
    assert placed_event["correlationId"] == order_id

    me = await shop.client.get("/api/v1/users/me", headers=headers)
    assert me.json()["flags"]["orderCount"] in (0, 1)  # the count follows OrderConfirmed


async def test_returning_user_quick_order_uses_the_saved_defaults(shop: Shop) -> None:
    product = await shop.product(stock=10)
    customer = await shop.customer("pm_card_ok", "pm_card_ok")
    first = await shop.order_of(customer, (product, 1))
    await shop.wait_for(first, "CONFIRMED")

    # Items only: the default address and the preferred payment method are used.
    quick = await shop.order_of(customer, (product, 3))
    order = await shop.wait_for(quick, "CONFIRMED")
    assert order["addressId"] == customer.address_id
    assert order["payment"]["paymentMethodId"] == customer.payment_method_ids[0]
    # An explicit method wins over the default.
    chosen = await shop.order_of(
        customer, (product, 1), paymentMethodId=customer.payment_method_ids[1]
    )
    order = await shop.wait_for(chosen, "CONFIRMED")
    assert order["payment"]["paymentMethodId"] == customer.payment_method_ids[1]
    await shop.check_invariants([first, quick, chosen], [product])


async def test_placing_is_idempotent_per_key(shop: Shop) -> None:
    product = await shop.product(stock=10)
    customer = await shop.customer()
    answers = await asyncio.gather(
        *(shop.place(customer, (product, 1), key="same-key") for _ in range(3))
    )
    assert {a.status_code for a in answers} == {202}, [a.text for a in answers]
    order_ids = {a.json()["orderId"] for a in answers}
    assert len(order_ids) == 1
    (order_id,) = order_ids
    again = await shop.place(customer, (product, 1), key="same-key")
    assert (again.status_code, again.json()["orderId"]) == (202, order_id)

    other_body = await shop.place(customer, (product, 2), key="same-key")
    assert other_body.status_code == 422
    assert other_body.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    no_key = await shop.client.post(
        "/api/v1/orders",
        json={"items": [{"productId": product, "quantity": 1}]},
        headers=customer.headers,
    )
    assert no_key.status_code == 422
    assert no_key.json()["code"] == "IDEMPOTENCY_KEY_REQUIRED"

    await shop.wait_for(order_id, "CONFIRMED")
    await shop.settle()
    assert len(shop.events("OrderPlaced", order_id)) == 1
    assert (await shop.stock(product))["committed"] == 1
    await shop.check_invariants([order_id], [product])


async def test_bad_orders_are_refused_with_their_codes(shop: Shop) -> None:
    product = await shop.product(stock=3)
    customer = await shop.customer()
    cases = [
        ((), {}, "EMPTY_ORDER"),
        (((product, 0),), {}, "INVALID_QUANTITY"),
        (((product, 101),), {}, "INVALID_QUANTITY"),
        ((("no-such-product", 1),), {}, "UNKNOWN_PRODUCT"),
        (((product, 1),), {"promoCode": "NOPE10"}, "INVALID_PROMO_CODE"),
        (((product, 1),), {"addressId": "not-mine"}, "UNKNOWN_ADDRESS"),
    ]
    for lines, body, code in cases:
        answer = await shop.place(customer, *lines, **body)
        assert (answer.status_code, answer.json()["code"]) == (422, code), answer.text
    await shop.settle(0.2)
    assert (await shop.stock(product))["available"] == 3


async def test_out_of_stock_is_rejected_with_alternatives(shop: Shop) -> None:
    category = "lamps-oos"
    gone = await shop.product(stock=0, price_cents=3_000, category=category)
    other = await shop.product(stock=4, price_cents=3_200, category=category)
    customer = await shop.customer()
    order_id = await shop.order_of(customer, (gone, 1))
    order = await shop.wait_for(order_id, "REJECTED")
    assert order["rejectionReason"] == "OUT_OF_STOCK"
    assert other in order["alternatives"]
    assert order["items"][0]["fulfilledQuantity"] == 0
    await shop.settle()
    assert shop.events("PaymentRequested", order_id) == []
    await shop.check_invariants([order_id], [gone, other])


async def test_partial_fulfilment_accepted_by_preference(shop: Shop) -> None:
    product = await shop.product(stock=2, price_cents=500)
    customer = await shop.customer(partial="accept")
    order_id = await shop.order_of(customer, (product, 5))
    order = await shop.wait_for(order_id, "CONFIRMED")
    assert order["items"][0]["quantity"] == 5
    assert order["items"][0]["fulfilledQuantity"] == 2
    assert order["totalCents"] == 1_000
    assert order["flags"]["partialFulfillment"] is True
    await shop.check_invariants([order_id], [product])
    (capture,) = shop.events("PaymentCaptured", order_id)
    assert capture["data"]["amountCents"] == 1_000


async def test_partial_fulfilment_decided_by_the_customer(shop: Shop) -> None:
    product = await shop.product(stock=3, price_cents=700)
    customer = await shop.customer(partial="ask")
    order_id = await shop.order_of(customer, (product, 4))
    waiting = await shop.wait_for(order_id, "AWAITING_CUSTOMER_DECISION")
    assert waiting["items"][0]["fulfilledQuantity"] == 3
    assert waiting["deadline"] is not None
    assert (await shop.stock(product))["reserved"] == 3

    decided = await shop.act(order_id, "decision", customer.headers, {"accept": True})
    assert decided.status_code == 200, decided.text
    assert decided.json()["totalCents"] == 2_100
    again = await shop.act(order_id, "decision", customer.headers, {"accept": True})
    assert again.status_code == 409
    assert again.json()["code"] == "INVALID_STATE"
    assert again.json()["currentStatus"] != "AWAITING_CUSTOMER_DECISION"
    await shop.wait_for(order_id, "CONFIRMED")
    await shop.check_invariants([order_id], [product])


async def test_partial_fulfilment_cancelled_by_preference(shop: Shop) -> None:
    product = await shop.product(stock=1)
    customer = await shop.customer(partial="cancel")
    order_id = await shop.order_of(customer, (product, 2))
    order = await shop.wait_for(order_id, "CANCELLED")
    assert order["cancelReason"] == "CUSTOMER"
    await shop.check_invariants([order_id], [product])
    assert (await shop.stock(product))["available"] == 1


async def test_partial_decision_times_out(shop: Shop) -> None:
    product = await shop.product(stock=1)
    customer = await shop.customer(partial="ask")
    order_id = await shop.order_of(customer, (product, 3))
    await shop.wait_for(order_id, "AWAITING_CUSTOMER_DECISION")
    assert await shop.sweep_order_deadlines(timedelta(seconds=1)) == 0  # not due yet
    assert await shop.sweep_order_deadlines() >= 1
    order = await shop.wait_for(order_id, "CANCELLED")
    assert order["cancelReason"] == "DECISION_TIMEOUT"
    await shop.check_invariants([order_id], [product])
    late = await shop.act(order_id, "decision", customer.headers, {"accept": True})
    assert (late.status_code, late.json()["currentStatus"]) == (409, "CANCELLED")


async def test_declined_payment_retried_with_another_card(shop: Shop) -> None:
    product = await shop.product(stock=4)
    customer = await shop.customer("pm_card_declined", "pm_card_ok")
    order_id = await shop.order_of(customer, (product, 2))
    failed = await shop.wait_for(order_id, "PAYMENT_FAILED")
    assert failed["payment"]["attempts"] == 1  # a decline is never retried by the service
    assert failed["payment"]["lastError"] == "DECLINED"
    assert (await shop.stock(product))["reserved"] == 2  # the reservation is kept

    retried = await shop.act(
        order_id,
        "payment/retry",
        customer.headers,
        {"paymentMethodId": customer.payment_method_ids[1]},
    )
    assert retried.status_code == 202, retried.text
    order = await shop.wait_for(order_id, "CONFIRMED")
    assert order["payment"]["attempts"] == 2
    assert order["payment"]["paymentMethodId"] == customer.payment_method_ids[1]
    await shop.check_invariants([order_id], [product])


async def test_transient_provider_failures_are_retried_to_success(shop: Shop) -> None:
    product = await shop.product(stock=2)
    customer = await shop.customer("pm_card_flaky")
    order_id = await shop.order_of(customer, (product, 1))
    order = await shop.wait_for(order_id, "CONFIRMED")
    assert order["payment"]["attempts"] >= 3
    payment = await shop.client.get(f"/api/v1/payments/{order_id}", headers=shop.admin)
    assert payment.status_code == 200, payment.text
    outcomes = [a["outcome"] for a in payment.json()["attempts"]]
    assert outcomes[-1] != outcomes[0]
    assert len(outcomes) >= 3
    await shop.check_invariants([order_id], [product])


async def test_exhausted_retries_then_the_window_closes(shop: Shop) -> None:
    product = await shop.product(stock=3)
    customer = await shop.customer("pm_card_unavailable")
    order_id = await shop.order_of(customer, (product, 3))
    failed = await shop.wait_for(order_id, "PAYMENT_FAILED")
    assert failed["payment"]["attempts"] == 4
    assert failed["payment"]["lastError"] == "PROVIDER_UNAVAILABLE"
    assert (await shop.stock(product))["reserved"] == 3

    assert await shop.sweep_order_deadlines() >= 1
    order = await shop.wait_for(order_id, "CANCELLED")
    assert order["cancelReason"] == "PAYMENT_FAILED"
    await shop.check_invariants([order_id], [product])
    assert (await shop.stock(product))["available"] == 3
    late = await shop.act(order_id, "payment/retry", customer.headers, {})
    assert (late.status_code, late.json()["code"]) == (409, "INVALID_STATE")


async def test_high_value_order_approved_by_a_manager(shop: Shop) -> None:
    product = await shop.product(stock=2, price_cents=APPROVAL_THRESHOLD_CENTS // 2 + 1)
    customer = await shop.customer()
    order_id = await shop.order_of(customer, (product, 2))
    waiting = await shop.wait_for(order_id, "AWAITING_APPROVAL")
    assert waiting["approvalReason"] == "highValue"
    assert waiting["flags"]["fraudFlag"] is False
    assert shop.events("PaymentRequested", order_id) == []

    refused = await shop.act(order_id, "approve", customer.headers, {"reason": "mine"})
    assert refused.status_code == 403
    queue = await shop.client.get(
        "/api/v1/orders", params={"status": "AWAITING_APPROVAL"}, headers=shop.manager
    )
    assert order_id in [o["orderId"] for o in queue.json()["items"]]
    approved = await shop.act(order_id, "approve", shop.manager, {"reason": "known customer"})
    assert approved.status_code == 200, approved.text
    order = await shop.wait_for(order_id, "CONFIRMED")
    approval = next(a for a in order["auditLogs"] if a["action"] == "approve")
    assert (approval["fromStatus"], approval["role"]) == ("AWAITING_APPROVAL", "Manager")
    assert shop.events("OrderApproved", order_id)[0]["data"]["reason"] == "known customer"
    await shop.check_invariants([order_id], [product])


async def test_manager_reject_restores_the_stock(shop: Shop) -> None:
    product = await shop.product(stock=3, price_cents=APPROVAL_THRESHOLD_CENTS)
    customer = await shop.customer()
    order_id = await shop.order_of(customer, (product, 1))
    await shop.wait_for(order_id, "AWAITING_APPROVAL")
    assert (await shop.stock(product))["reserved"] == 1
    rejected = await shop.act(order_id, "reject", shop.manager, {"reason": "too risky"})
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "REJECTED"
    assert rejected.json()["rejectionReason"] == "MANAGER_REJECTED"
    await shop.check_invariants([order_id], [product])
    assert (await shop.stock(product))["available"] == 3


async def test_fraud_flagged_order_waits_for_review(shop: Shop) -> None:
    product = await shop.product(stock=4, price_cents=2_000)
    customer = await shop.customer("pm_card_fraud")
    cleared = await shop.order_of(customer, (product, 1))
    waiting = await shop.wait_for(cleared, "AWAITING_APPROVAL")
    assert waiting["flags"]["fraudFlag"] is True
    assert waiting["approvalReason"] == "fraud"
    assert shop.events("PaymentReviewRequired", cleared)
    approved = await shop.act(cleared, "approve", shop.manager, {"reason": "called the customer"})
    assert approved.status_code == 200, approved.text
    await shop.wait_for(cleared, "CONFIRMED")

    refused = await shop.order_of(customer, (product, 1))
    await shop.wait_for(refused, "AWAITING_APPROVAL")
    rejected = await shop.act(refused, "reject", shop.admin, {"reason": "stolen card"})
    assert rejected.json()["rejectionReason"] == "FRAUD"
    await shop.check_invariants([cleared, refused], [product])


async def test_approval_window_closes(shop: Shop) -> None:
    product = await shop.product(stock=1, price_cents=APPROVAL_THRESHOLD_CENTS)
    customer = await shop.customer()
    order_id = await shop.order_of(customer, (product, 1))
    await shop.wait_for(order_id, "AWAITING_APPROVAL")
    # The usual 15-minute reservation expiry does not apply while a Manager may still approve:
    # once inventory has taken OrderApprovalRequired, the hold lasts until the approval deadline.
    inventory = shop.apps["inventory"].state.deps.db

    async def held_for_approval() -> bool:
        hold = await inventory["reservations"].find_one({"_id": order_id})
        return hold is not None and hold["expires_at"] > datetime.now(UTC) + timedelta(hours=1)

    await eventually(held_for_approval, what="the hold extended to the approval deadline")
    await shop.expire_reservations(timedelta(minutes=30))
    await shop.settle()
    assert (await shop.get(order_id))["status"] == "AWAITING_APPROVAL"
    assert (await shop.stock(product))["reserved"] == 1
    await shop.sweep_order_deadlines()
    order = await shop.wait_for(order_id, "CANCELLED")
    assert order["cancelReason"] == "APPROVAL_TIMEOUT"
    await shop.check_invariants([order_id], [product])


async def test_customer_cancels_before_payment(shop: Shop) -> None:
    product = await shop.product(stock=2)
    customer = await shop.customer("pm_card_declined")
    order_id = await shop.order_of(customer, (product, 2))
    await shop.wait_for(order_id, "PAYMENT_FAILED")
    cancelled = await shop.act(order_id, "cancel", customer.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED"
    assert cancelled.json()["cancelReason"] == "CUSTOMER"
    again = await shop.act(order_id, "cancel", customer.headers)
    assert (again.status_code, again.json()["currentStatus"]) == (409, "CANCELLED")

    unknown = await shop.place(customer, (product, 1), paymentMethodId="not-mine")
    assert (unknown.status_code, unknown.json()["code"]) == (422, "UNKNOWN_PAYMENT_METHOD")
    await shop.check_invariants([order_id], [product])
    assert (await shop.stock(product))["available"] == 2


async def test_confirmed_orders_cannot_be_cancelled(shop: Shop) -> None:
    product = await shop.product(stock=2)
    customer = await shop.customer()
    order_id = await shop.order_of(customer, (product, 1))
    await shop.wait_for(order_id, "CONFIRMED")
    for headers in (customer.headers, shop.admin):
        refused = await shop.act(order_id, "cancel", headers)
        assert (refused.status_code, refused.json()["currentStatus"]) == (409, "CONFIRMED")
    await shop.check_invariants([order_id], [product])


async def test_expired_reservation_before_payment_cancels_without_capture(shop: Shop) -> None:
    product = await shop.product(stock=2)
    customer = await shop.customer("pm_card_declined", "pm_card_ok")
    order_id = await shop.order_of(customer, (product, 2))
    await shop.wait_for(order_id, "PAYMENT_FAILED")
    assert await shop.expire_reservations() >= 1
    order = await shop.wait_for(order_id, "CANCELLED")
    assert order["cancelReason"] == "PAYMENT_FAILED"
    assert "reservationExpired" in [a["action"] for a in order["auditLogs"]]
    late = await shop.act(
        order_id,
        "payment/retry",
        customer.headers,
        {"paymentMethodId": customer.payment_method_ids[1]},
    )
    assert (late.status_code, late.json()["currentStatus"]) == (409, "CANCELLED")
    await shop.settle()
    assert shop.events("PaymentCaptured", order_id) == []
    await shop.check_invariants([order_id], [product])


async def test_concurrent_orders_for_the_last_unit(shop: Shop) -> None:
    product = await shop.product(stock=1)
    first, second = await asyncio.gather(shop.customer(), shop.customer())
    order_ids = await asyncio.gather(
        shop.order_of(first, (product, 1)), shop.order_of(second, (product, 1))
    )
    orders = [await shop.wait_for(o, "CONFIRMED", "REJECTED") for o in order_ids]
    assert sorted(o["status"] for o in orders) == ["CONFIRMED", "REJECTED"]
    await shop.check_invariants(order_ids, [product])
    assert await shop.stock(product) == {
        "received": 1,
        "available": 0,
        "reserved": 0,
        "committed": 1,
        "returned": 0,
    }


async def test_order_endpoints_enforce_roles_and_ownership(shop: Shop) -> None:
    product = await shop.product(stock=5, price_cents=APPROVAL_THRESHOLD_CENTS)
    owner, other = await asyncio.gather(shop.customer(), shop.customer())
    order_id = await shop.order_of(owner, (product, 1))
    await shop.wait_for(order_id, "AWAITING_APPROVAL")
    base = f"/api/v1/orders/{order_id}"

    # Another customer: the order does not exist for them (no existence leak).
    for method, path, body in [
        ("GET", base, None),
        ("GET", f"{base}/timeline", None),
        ("POST", f"{base}/cancel", None),
        ("POST", f"{base}/decision", {"accept": True}),
        ("POST", f"{base}/payment/retry", {}),
    ]:
        answer = await shop.client.request(method, path, json=body, headers=other.headers)
        assert (answer.status_code, answer.json()["code"]) == (404, "ORDER_NOT_FOUND"), path
    mine = await shop.client.get("/api/v1/orders", headers=other.headers)
    assert order_id not in [o["orderId"] for o in mine.json()["items"]]
    spoofed = await shop.client.get(
        "/api/v1/orders", params={"userId": owner.user_id}, headers=other.headers
    )
    assert order_id not in [o["orderId"] for o in spoofed.json()["items"]]

    # Staff-only steps, Customer-only steps, anonymous callers.
    for headers in (owner.headers, other.headers):
        for action in ("approve", "reject"):
            answer = await shop.act(order_id, action, headers, {"reason": "x"})
            assert answer.status_code == 403, (action, answer.text)
    for headers in (shop.manager, shop.admin):
        answer = await shop.client.post(
            "/api/v1/orders/precheck",
            json={"items": [{"productId": product, "quantity": 1}]},
            headers=headers,
        )
        assert answer.status_code == 403
    manager_cancel = await shop.act(order_id, "cancel", shop.manager)
    assert manager_cancel.status_code == 403
    owner_decision = await shop.act(order_id, "decision", shop.manager, {"accept": True})
    assert owner_decision.status_code == 403
    for path in ("/api/v1/orders", base, f"{base}/timeline"):
        assert (await shop.client.get(path)).status_code == 401

    # Managers and Admins see every order, and filter by customer and status.
    for headers in (shop.manager, shop.admin):
        assert (await shop.client.get(base, headers=headers)).status_code == 200
        listed = await shop.client.get(
            "/api/v1/orders",
            params={"userId": owner.user_id, "status": "AWAITING_APPROVAL"},
            headers=headers,
        )
        assert [o["orderId"] for o in listed.json()["items"]] == [order_id]
    own = await shop.client.get("/api/v1/orders", headers=owner.headers)
    assert [o["orderId"] for o in own.json()["items"]] == [order_id]

    # An Admin may cancel any unfinished order.
    cancelled = await shop.act(order_id, "cancel", shop.admin, {"reason": "duplicate"})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["cancelReason"] == "ADMIN"
    await shop.check_invariants([order_id], [product])


async def test_order_metrics_count_statuses_and_time_the_steps(shop: Shop) -> None:
    product = await shop.product(stock=1)
    customer = await shop.customer()
    order_id = await shop.order_of(customer, (product, 1))
    await shop.wait_for(order_id, "CONFIRMED")
    async with httpx.AsyncClient(base_url=shop.urls["order"]) as service:
        text = (await service.get("/metrics")).text
    confirmed = next(
        line
        for line in text.splitlines()
        if line.startswith('shop_orders_by_status{service="order",status="CONFIRMED"}')
    )
    assert float(confirmed.split()[-1]) >= 1
    count = next(
        line
        for line in text.splitlines()
        if line.startswith("shop_saga_step_duration_seconds_count") and 'step="CONFIRMED"' in line
    )
    assert float(count.split()[-1]) >= 1
    await shop.check_invariants([order_id], [product])


async def test_a_product_the_replica_lacks_is_read_from_inventory(shop: Shop) -> None:
    product = await shop.product(stock=1, price_cents=4_321)
    async with httpx.AsyncClient() as client:
        inventory = HttpInventory(client, shop.urls["inventory"], {})
        facts = await inventory.products([product, "nope/../x"])
    assert list(facts) == [product]
    assert (facts[product].price_cents, facts[product].currency) == (4_321, "USD")


async def test_reservation_expiring_while_the_provider_retries_voids_the_late_authorization(
    shop: Shop,
) -> None:
    product = await shop.product(stock=2)
    customer = await shop.customer("pm_card_flaky")
    order_id = await shop.order_of(customer, (product, 2))
    await shop.wait_for(order_id, "AWAITING_PAYMENT", timeout=10)
    # The hold expires while payment is still retrying the provider (two transient failures).
    assert await shop.expire_reservations() == 1
    order = await shop.wait_for(order_id, "CANCELLED")
    assert order["cancelReason"] == "PAYMENT_TIMEOUT"
    # The authorization that lands after the cancel is voided, never committed or captured.
    await eventually(lambda: shop.events("PaymentVoided", order_id), what="the late void")
    assert shop.events("OrderPaid", order_id) == []
    await shop.check_invariants([order_id], [product])


async def test_an_admin_acts_on_a_customers_behalf(shop: Shop) -> None:
    product = await shop.product(stock=1, price_cents=900)
    customer = await shop.customer("pm_card_declined", "pm_card_ok", partial="ask")
    order_id = await shop.order_of(customer, (product, 2))
    await shop.wait_for(order_id, "AWAITING_CUSTOMER_DECISION")
    decided = await shop.act(order_id, "decision", shop.admin, {"accept": True})
    assert decided.status_code == 200, decided.text
    await shop.wait_for(order_id, "PAYMENT_FAILED")
    foreign = await shop.act(order_id, "payment/retry", shop.admin, {"paymentMethodId": "pm-x"})
    assert (foreign.status_code, foreign.json()["code"]) == (422, "UNKNOWN_PAYMENT_METHOD")
    retried = await shop.act(
        order_id, "payment/retry", shop.admin, {"paymentMethodId": customer.payment_method_ids[1]}
    )
    assert retried.status_code == 202, retried.text
    order = await shop.wait_for(order_id, "CONFIRMED")
    assert order["totalCents"] == 900
    assert [a["role"] for a in order["auditLogs"] if a["action"] == "retryPayment"] == ["Admin"]
    await shop.check_invariants([order_id], [product])


async def test_precheck_refuses_quantities_out_of_range(shop: Shop) -> None:
    product = await shop.product(stock=1)
    customer = await shop.customer()
    for quantity in (0, 101, -999_999):
        answer = await shop.client.post(
            "/api/v1/orders/precheck",
            json={"items": [{"productId": product, "quantity": quantity}]},
            headers=customer.headers,
        )
        assert (answer.status_code, answer.json()["code"]) == (422, "INVALID_QUANTITY")
