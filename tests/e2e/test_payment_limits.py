"""Issue 16, items 6 to 8, through the gateway: a Manager's approval covers only the card and
amount that were reviewed, payment retries are capped, and PAID waits for the stock commit no
longer than its window.

One shop serves the module (its own, because the commit test withholds inventory's OrderPaid
delivery); each test makes its own customers and products and ends with the invariants.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from bus import BusConnection
from bus.runtime import bus_config
from bus.topology import Names
from contracts.order import OrderPaid
from devkit.bus_testing import eventually

from .shop import APPROVAL_THRESHOLD_CENTS, Shop, running_shop

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

DEFAULT_MAX_RETRIES = 5


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shop(mongo_url: str, amqp_url: str, run_prefix: str) -> AsyncIterator[Shop]:
    async with running_shop(mongo_url, amqp_url, run_prefix) as running:
        yield running


async def high_value_product(shop: Shop) -> str:
    return await shop.product(stock=3, price_cents=APPROVAL_THRESHOLD_CENTS)


async def approve(shop: Shop, order_id: str, reason: str) -> None:
    approved = await shop.act(order_id, "approve", shop.manager, {"reason": reason})
    assert approved.status_code == 200, approved.text


# --- item 6: a Manager's approval covers the reviewed card and amount -------------------------


async def test_order_approved_for_its_value_is_still_scored_by_the_fraud_rules(
    shop: Shop,
) -> None:
    product = await high_value_product(shop)
    customer = await shop.customer("pm_card_fraud")
    order_id = await shop.order_of(customer, (product, 1))
    waiting = await shop.wait_for(order_id, "AWAITING_APPROVAL")
    assert (waiting["approvalReason"], waiting["flags"]["fraudFlag"]) == ("highValue", False)

    await approve(shop, order_id, "a big order from a known customer")
    # The approval looked at the value; the card is flagged: back to review, for fraud.
    review = await shop.wait_for(order_id, "AWAITING_APPROVAL")
    assert (review["approvalReason"], review["flags"]["fraudFlag"]) == ("fraud", True)
    assert shop.events("PaymentReviewRequired", order_id)
    assert shop.events("PaymentAuthorized", order_id) == []

    # A second approval, now of the flagged card and amount, lets it be charged.
    await approve(shop, order_id, "called the customer about the card")
    await shop.wait_for(order_id, "CONFIRMED")
    (authorized,) = shop.events("PaymentAuthorized", order_id)
    assert authorized["data"]["fraudFlag"] is True
    await shop.check_invariants([order_id], [product])


async def test_retry_with_another_card_after_an_approval_is_scored_again(shop: Shop) -> None:
    product = await high_value_product(shop)
    customer = await shop.customer("pm_card_declined", "pm_card_fraud")
    declined_card, flagged_card = customer.payment_method_ids
    order_id = await shop.order_of(customer, (product, 1))
    await shop.wait_for(order_id, "AWAITING_APPROVAL")
    await approve(shop, order_id, "known customer")
    failed = await shop.wait_for(order_id, "PAYMENT_FAILED")
    assert failed["payment"]["lastError"] == "DECLINED"

    retried = await shop.act(
        order_id, "payment/retry", customer.headers, {"paymentMethodId": flagged_card}
    )
    assert retried.status_code == 202, retried.text
    review = await shop.wait_for(order_id, "AWAITING_APPROVAL")
    assert (review["approvalReason"], review["flags"]["fraudFlag"]) == ("fraud", True)
    assert shop.events("PaymentAuthorized", order_id) == []

    rejected = await shop.act(order_id, "reject", shop.manager, {"reason": "not their card"})
    assert rejected.json()["rejectionReason"] == "FRAUD"
    await shop.check_invariants([order_id], [product])


# --- item 8: customer retries are capped ------------------------------------------------------


async def test_payment_retries_stop_at_the_limit(shop: Shop) -> None:
    product = await shop.product(stock=2)
    customer = await shop.customer("pm_card_declined")
    order_id = await shop.order_of(customer, (product, 1))
    await shop.wait_for(order_id, "PAYMENT_FAILED")
    for _ in range(DEFAULT_MAX_RETRIES):
        retried = await shop.act(order_id, "payment/retry", customer.headers, {})
        assert retried.status_code == 202, retried.text
        await shop.wait_for(order_id, "PAYMENT_FAILED")

    refused = await shop.act(order_id, "payment/retry", customer.headers, {})
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "RETRY_LIMIT_REACHED"
    order = await shop.get(order_id)
    assert order["status"] == "PAYMENT_FAILED"
    assert len(shop.events("PaymentRequested", order_id)) == 1 + DEFAULT_MAX_RETRIES

    cancelled = await shop.act(order_id, "cancel", customer.headers, {})
    assert cancelled.status_code == 200, cancelled.text
    await shop.check_invariants([order_id], [product])


# --- item 7: PAID has a deadline too ----------------------------------------------------------


async def test_paid_order_whose_stock_commit_never_comes_is_cancelled_and_voided(
    shop: Shop,
) -> None:
    product = await shop.product(stock=4)
    customer = await shop.customer()
    order_id = await withheld_commit(shop, customer, product)

    assert await shop.sweep_order_deadlines() >= 1  # as if ORDER_COMMIT_WINDOW_SECONDS passed
    order = await shop.wait_for(order_id, "CANCELLED")
    assert order["cancelReason"] == "COMMIT_FAILED"

    voided = await payment_of(shop, order_id, "voided")
    assert voided["status"] == "voided"
    await shop.check_invariants([order_id], [product])
    stock = await shop.stock(product)
    assert (stock["available"], stock["reserved"], stock["committed"]) == (4, 0, 0)


async def withheld_commit(shop: Shop, customer: Any, product: str) -> str:
    """Place an order with inventory deaf to OrderPaid: it pays, and the commit never comes."""
    settings = shop.apps["inventory"].state.settings
    names = Names.of(bus_config(settings))
    connection = BusConnection(settings.amqp_url, name=f"{settings.bus_prefix}e2e-deaf")
    channel = await connection.channel()
    queue = await channel.get_queue(names.queue, ensure=True)
    await queue.unbind(names.exchange, OrderPaid.ROUTING_KEY)
    try:
        order_id = await shop.order_of(customer, (product, 1))
        await shop.wait_for(order_id, "PAID")
        await shop.settle(1.0)
        assert (await shop.get(order_id))["status"] == "PAID"
        assert (await shop.stock(product))["reserved"] == 1
    finally:
        await queue.bind(names.exchange, OrderPaid.ROUTING_KEY)
        await connection.close()
    return order_id


async def payment_of(shop: Shop, order_id: str, status: str) -> dict[str, Any]:
    """The order's payment record (Admin lookup) once it reached `status`."""
    found: dict[str, Any] = {}

    async def reached() -> bool:
        response = await shop.client.get(f"/api/v1/payments/{order_id}", headers=shop.admin)
        found.update(response.json())
        return response.status_code == 200 and found.get("status") == status

    await eventually(reached, what=f"payment of {order_id} {status}")
    return found
