"""Polling an order through the gateway (issue 17): an ETag that follows the order, 304 without
a body while it has not moved, `Retry-After` while it can still move, and ownership decided
before any of that."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from .shop import APPROVAL_THRESHOLD_CENTS, Shop, running_shop

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shop(mongo_url: str, amqp_url: str, run_prefix: str) -> AsyncIterator[Shop]:
    async with running_shop(mongo_url, amqp_url, run_prefix) as running:
        yield running


async def test_a_poller_gets_304_until_the_order_moves(shop: Shop) -> None:
    # Above the approval threshold: the order waits for a Manager, so it holds still.
    product = await shop.product(stock=2, price_cents=APPROVAL_THRESHOLD_CENTS // 2 + 1)
    customer = await shop.customer()
    order_id = await shop.order_of(customer, (product, 2))
    await shop.wait_for(order_id, "AWAITING_APPROVAL")
    url = f"/api/v1/orders/{order_id}"

    first = await shop.client.get(url, headers=customer.headers)
    assert first.status_code == 200
    tag = first.headers["etag"]
    assert tag.startswith('W/"')
    assert first.headers["retry-after"] == "1"  # not terminal: look again in a second
    assert first.headers["cache-control"] == "private, no-cache"

    for sent in (tag, f'"stale", {tag}', "*"):
        same = await shop.client.get(url, headers={**customer.headers, "If-None-Match": sent})
        assert same.status_code == 304, (sent, same.text)
        assert same.content == b""
        assert same.headers["etag"] == tag
        assert same.headers["retry-after"] == "1"
    stale = await shop.client.get(url, headers={**customer.headers, "If-None-Match": 'W/"0"'})
    assert stale.status_code == 200 and stale.json() == first.json()

    approved = await shop.act(order_id, "approve", shop.manager, {"reason": "known customer"})
    assert approved.status_code == 200, approved.text
    await shop.wait_for(order_id, "CONFIRMED")
    moved = await shop.client.get(url, headers={**customer.headers, "If-None-Match": tag})
    assert moved.status_code == 200
    assert moved.headers["etag"] != tag
    assert moved.json()["status"] == "CONFIRMED"
    assert "retry-after" not in moved.headers  # terminal: nothing more to wait for


async def test_a_conditional_get_of_someone_elses_order_is_the_same_404(shop: Shop) -> None:
    product = await shop.product(stock=2, price_cents=APPROVAL_THRESHOLD_CENTS // 2 + 1)
    owner = await shop.customer()
    order_id = await shop.order_of(owner, (product, 2))
    await shop.wait_for(order_id, "AWAITING_APPROVAL")
    url = f"/api/v1/orders/{order_id}"
    tag = (await shop.client.get(url, headers=owner.headers)).headers["etag"]

    other = await shop.customer()
    plain = await shop.client.get(url, headers=other.headers)
    assert plain.status_code == 404
    for guess in (tag, "*"):
        guessed = await shop.client.get(url, headers={**other.headers, "If-None-Match": guess})
        assert guessed.status_code == 404
        assert guessed.json()["code"] == plain.json()["code"] == "ORDER_NOT_FOUND"
        assert guessed.json()["detail"] == plain.json()["detail"]
        assert "etag" not in guessed.headers
    anonymous = await shop.client.get(url, headers={"If-None-Match": tag})
    assert anonymous.status_code == 401
