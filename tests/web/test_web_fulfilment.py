"""Fulfilment and returns in Chromium (issue 19): the warehouse, tracking, a return line by line,
the returns queue, and the refund on the customer's order page.

The order is arranged through the public API; everything after it is done in the browser, by the
people who do it (Admin, customer, Manager), through labels, roles and visible text.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from .shopweb import ADMIN, MANAGER, PASSWORD, System, shot

pytestmark = [pytest.mark.web, pytest.mark.timeout(240)]


def sign_in(page: Page, system: System, identifier: str, password: str = PASSWORD) -> None:
    page.goto(f"{system.url}/login")
    page.get_by_label("Email or username").fill(identifier)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))


def open_from_nav(page: Page, label: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=label, exact=True).click()
    expect(page.get_by_role("heading", level=1, name=label)).to_be_visible()


def refresh_until_visible(page: Page, target: Locator, tries: int = 40) -> None:
    """Lists that follow events (warehouse, inbox) do not poll: refresh as a person would."""
    for _ in range(tries):
        if target.count():
            break
        page.wait_for_timeout(500)
        page.get_by_role("button", name="Refresh").click()
    expect(target.first).to_be_visible()


def order_view(system: System, order_id: str) -> dict[str, Any]:
    answer = system.http.get(f"/api/v1/orders/{order_id}", headers=system.admin)
    assert answer.status_code == 200, answer.text
    order: dict[str, Any] = answer.json()
    return order


def test_ship_deliver_return_one_unit_and_see_the_refund(page: Page, system: System) -> None:
    name = f"Wool Socks {secrets.token_hex(3)}"
    product = system.product(name, price_cents=1_250, stock=10)
    email, headers = system.customer("pm_card_ok")
    order_id = system.order(headers, product, 2)
    system.wait_for(order_id, "CONFIRMED")
    short = f"#{order_id[-8:]}"

    # The Admin's warehouse queue: the order's shipment waits as PENDING; ship it, then deliver it.
    sign_in(page, system, *ADMIN)
    open_from_nav(page, "Warehouse")
    row = page.locator(f"tr[data-order-id='{order_id}']")
    refresh_until_visible(page, row)
    expect(row).to_contain_text(f"2× {name}")
    expect(row).to_contain_text("1 Main St")
    tracking = f"PC{secrets.token_hex(6).upper()}"
    row.get_by_label(f"Carrier for order {short}").fill("Parcel Co")
    row.get_by_label(f"Tracking number for order {short}").fill(tracking)
    shot(page, "22-admin-warehouse-queue")
    row.get_by_role("button", name="Ship", exact=True).click()
    expect(row.locator("[data-fulfilment='SHIPPED']")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="shipped.")).to_have_text(
        f"Order {short} shipped."
    )
    expect(row).to_contain_text(tracking)
    row.get_by_role("button", name="Deliver").click()
    expect(row.locator("[data-fulfilment='DELIVERED']")).to_be_visible()
    shot(page, "23-admin-warehouse-shipped-and-delivered")
    sign_out(page)

    # The customer sees the tracking and asks to return one of the two pairs.
    sign_in(page, system, email)
    page.goto(f"{system.url}/orders/{order_id}")
    delivery = page.get_by_role("region", name="Delivery")
    expect(delivery.locator("[data-fulfilment='DELIVERED']")).to_be_visible(timeout=20_000)
    expect(delivery).to_contain_text("Parcel Co")
    expect(delivery.get_by_test_id("tracking-number")).to_have_text(tracking)
    returns = page.get_by_role("region", name="Returns", exact=True)
    quantity = returns.get_by_role("spinbutton", name=f"Quantity of {name} to return")
    returns.get_by_label("Reason for the return").fill("one pair is enough")
    quantity.fill("3")  # more than was delivered: refused before anything is sent
    returns.get_by_role("button", name="Request return").click()
    expect(returns.get_by_role("alert")).to_contain_text(f"between 0 and 2 of {name}")
    quantity.fill("1")
    shot(page, "24-customer-tracking-and-return-form")
    returns.get_by_role("button", name="Request return").click()
    expect(page.get_by_role("status").filter(has_text="Return requested")).to_contain_text("$12.50")
    (requested,) = order_view(system, order_id)["returns"]
    return_id = requested["returnId"]
    entry = returns.locator(f"tr[data-return-id='{return_id}']")
    expect(entry.locator("[data-return-status='REQUESTED']")).to_be_visible()
    expect(entry).to_contain_text(f"1× {name}")
    expect(quantity).to_have_attribute("max", "1")  # one pair is left to return
    sign_out(page)

    # The Manager approves it in the returns queue.
    sign_in(page, system, *MANAGER)
    open_from_nav(page, "Returns")
    card = page.locator(f"[data-return-id='{return_id}']")
    expect(card).to_contain_text("$12.50")
    expect(card).to_contain_text("one pair is enough")
    expect(card).to_contain_text(f"1× {name}")
    card.get_by_label("Reason").fill("unworn, within the window")
    shot(page, "25-manager-returns-queue")
    card.get_by_role("button", name="Approve").click()
    expect(card.locator("[data-return-status='APPROVED']")).to_be_visible()
    sign_out(page)

    # The Admin receives the parcel: the refund follows.
    sign_in(page, system, *ADMIN)
    open_from_nav(page, "Returns")
    page.get_by_label("Status").select_option("APPROVED")
    card = page.locator(f"[data-return-id='{return_id}']")
    expect(card).to_be_visible()
    card.get_by_role("button", name="Receive").click()
    expect(
        card.locator("[data-return-status='RECEIVED'], [data-return-status='REFUNDED']")
    ).to_be_visible()
    shot(page, "26-admin-receives-the-return")
    sign_out(page)

    # The customer's order page: the return REFUNDED, the refund on the order, and the inbox.
    sign_in(page, system, email)
    page.goto(f"{system.url}/orders/{order_id}")
    returns = page.get_by_role("region", name="Returns", exact=True)
    entry = returns.locator(f"tr[data-return-id='{return_id}']")
    expect(entry.locator("[data-return-status='REFUNDED']")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("refunded")).to_have_text("$12.50")
    shot(page, "27-customer-return-refunded")
    assert order_view(system, order_id)["refundedCents"] == 1_250

    page.get_by_role("link", name=re.compile(r"^Notifications")).click()
    shipped = page.locator("[data-type='ORDER_SHIPPED']")
    refund = page.locator("[data-type='REFUND_ISSUED']")
    refresh_until_visible(page, refund)
    expect(shipped.first).to_contain_text(tracking)
    expect(shipped.first.get_by_role("link", name="View order")).to_have_attribute(
        "href", f"/orders/{order_id}"
    )
    shot(page, "28-customer-notifications-shipped-and-refunded")
