"""The web front end in Chromium against the running system (issue 11's must-show list).

Each test arranges its starting point through the public API (products, a returning customer,
an order waiting for approval) and then does what a person would do in the browser: labels,
roles and visible text, never the app's internals.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, Route, expect

from .shopweb import ADMIN, MANAGER, PASSWORD, System, shot

pytestmark = [pytest.mark.web, pytest.mark.timeout(180)]

STAFF_LINKS = (
    "Approvals",
    "Returns",
    "Reports",
    "Users",
    "Products",
    "Warehouse",
    "Audit log",
    "Dead letters",
)


def sign_in(page: Page, system: System, identifier: str, password: str = PASSWORD) -> None:
    """The email-first sign-in: identify, then the password of a known account."""
    page.goto(f"{system.url}/login")
    page.get_by_label("Email or username").fill(identifier)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def find_product(page: Page, name: str) -> Locator:
    """Search the catalogue; the catalogue's card of the product."""
    catalogue = page.get_by_role("region", name="Catalogue")
    catalogue.get_by_role("searchbox", name="Search products").fill(name)
    catalogue.get_by_role("button", name="Search", exact=True).click()
    card = catalogue.get_by_role("listitem").filter(has=page.get_by_role("heading", name=name))
    expect(card).to_be_visible()
    return card


def expect_status(page: Page, status: str, timeout: float = 20_000) -> None:
    """The live order page reaches `status` (it polls while the saga runs)."""
    expect(page.locator(f"h1 [data-status='{status}']")).to_be_visible(timeout=timeout)


def test_first_time_customer_completes_the_profile_and_orders(page: Page, system: System) -> None:
    name = f"Desk Plant {secrets.token_hex(3)}"
    system.product(name, price_cents=1_500, stock=5)
    email = f"first{secrets.token_hex(4)}@example.com"

    page.goto(f"{system.url}/")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.get_by_label("Email or username").fill(email)
    shot(page, "01-sign-in-email-first")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    page.get_by_label("Password (at least 10 characters)").fill(PASSWORD)
    shot(page, "02-register")
    page.get_by_role("button", name="Create account").click()

    expect(page.get_by_role("heading", name="Shop", exact=True)).to_be_visible()
    expect(page.get_by_role("complementary", name="Complete your profile")).to_be_visible()
    shot(page, "03-home-first-visit")
    find_product(page, name).get_by_role("button", name=f"Add {name} to cart").click()
    page.get_by_role("link", name=re.compile(r"^Cart")).click()
    page.get_by_role("spinbutton", name=f"Quantity of {name}").fill("2")
    page.get_by_role("spinbutton", name=f"Quantity of {name}").press("Tab")
    page.get_by_role("button", name="Check out").click()

    # Only what is missing: an address and a card, asked once.
    expect(page.get_by_role("heading", name="Before we can ship")).to_be_visible()
    page.get_by_label("Street and number").fill("2 Elm St")
    page.get_by_label("City").fill("Oslo")
    page.get_by_label("State / region").fill("Oslo")
    page.get_by_label("ZIP / postal code").fill("0150")
    page.get_by_label("Country").fill("NO")
    page.get_by_label("Card").select_option("pm_card_ok")
    shot(page, "04-checkout-asks-only-what-is-missing")
    page.get_by_role("button", name="Save and continue").click()
    expect(page.get_by_label("Deliver to")).to_contain_text("2 Elm St")
    page.get_by_role("button", name="Place order").click()

    expect(page).to_have_url(re.compile(r"/orders/[^/]+$"))
    expect_status(page, "CONFIRMED")
    timeline = page.get_by_role("region", name="Timeline")
    expect(timeline).to_contain_text("Order confirmed")
    expect(timeline).to_contain_text("Payment authorized")
    expect(page.get_by_test_id("order-total")).to_have_text("$30.00")
    shot(page, "05-order-confirmed-with-timeline")

    # Asked once: the profile is complete now, the home page no longer prompts.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Shop").click()
    expect(page.get_by_role("heading", name="Shop", exact=True)).to_be_visible()
    expect(page.get_by_role("complementary", name="Complete your profile")).to_have_count(0)

    # The device the customer signed up from was recorded.
    users = system.http.get("/api/v1/users", params={"q": email}, headers=system.admin).json()
    (user,) = [u for u in users["items"] if u["email"] == email]
    assert user["deviceInfo"]["browser"] == "Chrome", user["deviceInfo"]

    page.get_by_role("link", name=re.compile(r"^Notifications")).click()
    expect(page.locator("[data-type='ORDER_CONFIRMED']").first).to_be_visible(timeout=20_000)
    shot(page, "06-notifications")


def test_returning_customer_quick_orders_in_at_most_three_clicks(
    page: Page, system: System
) -> None:
    name = f"Coffee Beans {secrets.token_hex(3)}"
    product = system.product(name, price_cents=1_299, stock=20)
    email, headers = system.customer("pm_card_ok")
    system.wait_for(system.order(headers, product, 1), "CONFIRMED")

    sign_in(page, system, email)
    expect(page.get_by_role("heading", name="Buy again")).to_be_visible()
    shot(page, "07-home-returning-customer")
    clicks = 0

    def click(role: str, label: str) -> None:
        nonlocal clicks
        clicks += 1
        page.get_by_role(role, name=label).click()  # type: ignore[arg-type]

    click("button", "Order again")
    dialog = page.get_by_role("dialog", name=re.compile("Quick order"))
    expect(dialog).to_contain_text("1 Main St")
    expect(dialog).to_contain_text("ending")
    shot(page, "08-quick-order-saved-defaults")
    click("button", "Place order")
    expect_status(page, "CONFIRMED")
    assert clicks <= 3, clicks
    expect(page.get_by_role("rowheader", name=name)).to_be_visible()


def test_partial_fulfilment_decision(page: Page, system: System) -> None:
    name = f"Tea Set {secrets.token_hex(3)}"
    system.product(name, price_cents=2_000, stock=2)
    email, _ = system.customer("pm_card_ok", partial="ask")

    sign_in(page, system, email)
    find_product(page, name).get_by_role("button", name=f"Add {name} to cart").click()
    page.get_by_role("link", name=re.compile(r"^Cart")).click()
    page.get_by_role("spinbutton", name=f"Quantity of {name}").fill("3")
    page.get_by_role("spinbutton", name=f"Quantity of {name}").press("Tab")
    page.get_by_role("button", name="Check out").click()
    expect(page.get_by_text("Only 2 of 3 available")).to_be_visible()
    shot(page, "09-cart-partial-stock")
    page.get_by_role("button", name="Place order").click()

    decision = page.get_by_role("region", name="Not everything is in stock")
    expect(decision).to_be_visible(timeout=20_000)
    expect(decision).to_contain_text("2 of 3")
    expect(decision).to_contain_text("$40.00")
    shot(page, "10-partial-fulfilment-decision")
    decision.get_by_role("button", name="Accept partial order").click()
    expect_status(page, "CONFIRMED")
    expect(page.get_by_test_id("order-total")).to_have_text("$40.00")


def test_payment_retry_after_a_declined_card(page: Page, system: System) -> None:
    name = f"Headphones {secrets.token_hex(3)}"
    system.product(name, price_cents=5_000, stock=3)
    email, _ = system.customer("pm_card_declined", "pm_card_ok")

    sign_in(page, system, email)
    find_product(page, name).get_by_role("button", name=f"Buy {name} now").click()
    page.get_by_role("dialog").get_by_role("button", name="Place order").click()
    retry = page.get_by_role("region", name="Payment failed")
    expect(retry).to_be_visible(timeout=20_000)
    expect(retry).to_contain_text("declined")
    retry.get_by_label("Card").select_option(index=1)
    shot(page, "11-payment-retry")
    retry.get_by_role("button", name="Retry payment").click()
    expect_status(page, "CONFIRMED")


def test_sold_out_items_offer_in_stock_alternatives(page: Page, system: System) -> None:
    category = f"lamps-{secrets.token_hex(3)}"
    name = f"Floor Lamp {secrets.token_hex(3)}"
    other = f"Reading Lamp {secrets.token_hex(3)}"
    product = system.product(name, price_cents=4_000, stock=1, category=category)
    system.product(other, price_cents=4_500, stock=5, category=category)
    email, _ = system.customer("pm_card_ok")

    sign_in(page, system, email)
    find_product(page, name).get_by_role("button", name=f"Add {name} to cart").click()
    system.stock(product, -1, "sold in the shop")  # gone before the customer checks out
    page.get_by_role("link", name=re.compile(r"^Cart")).click()
    page.get_by_role("button", name="Check out").click()
    row = page.get_by_role("row", name=re.compile(f"^{name}"))
    expect(row).to_contain_text("Out of stock")
    expect(row).to_contain_text("You might take instead")
    shot(page, "12-cart-out-of-stock-alternatives")
    row.get_by_role("button", name=f"Add {other} to cart").click()
    # The cart is checked again: the alternative is available, the sold-out line can go.
    replacement = page.get_by_role("row", name=re.compile(f"^{other}"))
    expect(replacement).to_contain_text("Available")
    page.get_by_role("spinbutton", name=f"Quantity of {name}").fill("0")
    page.get_by_role("spinbutton", name=f"Quantity of {name}").press("Tab")
    page.get_by_role("button", name="Place order").click()
    expect_status(page, "CONFIRMED")
    expect(page.get_by_role("rowheader", name=other)).to_be_visible()


def test_manager_approves_a_high_value_order_and_sees_it_in_the_report(
    page: Page, system: System
) -> None:
    name = f"Grand Piano {secrets.token_hex(3)}"
    product = system.product(name, price_cents=600_000, stock=2)  # above the 500000 threshold
    _, headers = system.customer("pm_card_ok")
    order_id = system.order(headers, product, 1)
    system.wait_for(order_id, "AWAITING_APPROVAL")

    sign_in(page, system, MANAGER[0], MANAGER[1])
    expect(page.get_by_role("heading", name="Approval queue")).to_be_visible()
    card = page.locator(f"[data-order-id='{order_id}']")
    expect(card).to_contain_text("$6,000.00")
    expect(card).to_contain_text("high value")
    shot(page, "13-manager-approval-queue")
    card.get_by_label("Reason").fill("known customer, verified by phone")
    card.get_by_role("button", name="Approve").click()
    expect(card).to_contain_text("Order approved.")
    system.wait_for(order_id, "CONFIRMED")

    page.get_by_role("link", name="Reports").click()
    expect(page.get_by_role("heading", name="Reports")).to_be_visible()
    top = page.get_by_role("region", name="Top products")
    for _ in range(40):  # analytics follows the events: refresh until the sale is counted
        if top.get_by_role("rowheader", name=name).count():
            break
        page.wait_for_timeout(500)
        page.get_by_role("button", name="Refresh").click()
    expect(top.get_by_role("rowheader", name=name)).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("Orders by status"))).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("Customer funnel"))).to_be_visible()
    # Revenue and orders over time: a day-by-day chart that counts today's sale.
    series = page.get_by_role("img", name=re.compile("^Revenue and orders per day"))
    summary = re.compile(r"\$[\d,]+\.\d\d from [1-9]\d* orders")
    expect(series).to_have_attribute("aria-label", summary)
    days = page.get_by_role("region", name="Revenue and orders per day")
    days.get_by_text("Figures by day").click()
    sold = days.get_by_role("row", name=re.compile(r"^\d{4}-\d\d-\d\d [1-9]"))
    expect(sold.last).to_be_visible()  # a day with orders (the table lists the quiet ones too)
    shot(page, "14-manager-reports")

    # By product: each product under its name, in the table, the chart and the CSV.
    page.get_by_label("Group by").select_option("product")
    page.get_by_role("button", name="Show").click()
    by_product = page.get_by_role("region", name="Sales by product")
    expect(by_product.get_by_role("rowheader", name=name)).to_be_visible()
    chart = page.get_by_role("img", name=re.compile("^Revenue by product"))
    expect(chart).to_have_attribute("aria-label", re.compile(re.escape(name)))
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0] == "key,orders,revenueCents,refundsCents,netRevenueCents,name"
    assert any(line.endswith(f",{name}") for line in lines[1:]), lines
    shot(page, "14b-manager-reports-by-product")

    page.get_by_role("link", name="Approvals").click()
    expect(page.locator(f"[data-order-id='{order_id}']")).to_have_count(0)


def test_a_customer_sees_no_staff_navigation_and_is_told_why_a_page_is_forbidden(
    page: Page, system: System
) -> None:
    email, _ = system.customer()
    # Keyboard only: each step's field has the focus, Enter submits.
    page.goto(f"{system.url}/login")
    expect(page.get_by_label("Email or username")).to_be_focused()
    page.keyboard.type(email)
    page.keyboard.press("Enter")
    expect(page.get_by_label("Password", exact=True)).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Shop", exact=True)).to_be_focused()

    # Only the access token is kept, per tab; no refresh token stored, no cookie, no localStorage.
    stored = page.evaluate("() => JSON.stringify(Object.entries(sessionStorage))")
    assert "accessToken" in stored and "refreshToken" not in stored, stored
    assert page.evaluate("() => localStorage.length") == 0
    assert page.evaluate("() => document.cookie") == ""

    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Shop")).to_be_visible()
    for label in STAFF_LINKS:
        expect(nav.get_by_role("link", name=label)).to_have_count(0)

    for path, who in (("/admin/users", "Admin"), ("/manager/reports", "Manager or Admin")):
        page.goto(f"{system.url}{path}")
        expect(page.get_by_role("heading", name="Access denied")).to_be_visible()
        expect(page.get_by_role("alert")).to_contain_text(f"only for {who} accounts")
        expect(page.get_by_role("alert")).to_contain_text("signed in as a Customer")
        for label in STAFF_LINKS:
            expect(nav.get_by_role("link", name=label)).to_have_count(0)
    shot(page, "15-customer-forbidden-url")

    # A phone-sized screen: the same app, laid out for it.
    page.set_viewport_size({"width": 390, "height": 844})
    nav.get_by_role("link", name="Shop").click()
    catalogue = page.get_by_role("region", name="Catalogue")
    expect(catalogue.get_by_role("listitem").first).to_be_visible()
    shot(page, "21-home-on-a-phone")


def test_admin_consoles(page: Page, system: System) -> None:
    sign_in(page, system, ADMIN[0], ADMIN[1])
    expect(page.get_by_role("heading", name="All orders")).to_be_visible()
    shot(page, "16-admin-orders")

    # Products and stock: create one, then adjust its stock with a reason.
    name = f"Admin Lamp {secrets.token_hex(3)}"
    page.get_by_role("link", name="Products").click()
    form = page.get_by_role("region", name="Add a product")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Category").fill("lighting")
    form.get_by_label("Price (USD)").fill("25.50")
    form.get_by_label("Initial stock").fill("4")
    form.get_by_role("button", name="Add product").click()
    expect(page.get_by_role("status")).to_contain_text(f"{name} created.")
    page.get_by_role("searchbox", name="Search").fill(name)
    page.get_by_role("button", name="Search", exact=True).click()
    row = page.get_by_role("row", name=re.compile(name))
    row.get_by_label(f"Change in stock of {name}").fill("3")
    row.get_by_label(f"Reason for the change of {name}").fill("delivery")
    row.get_by_role("button", name="Apply").click()
    expect(row).to_contain_text("7")
    shot(page, "17-admin-products")

    # Users: a customer made a Manager.
    email, _ = system.customer()
    page.get_by_role("link", name="Users").click()
    page.get_by_role("searchbox", name="Search").fill(email)
    page.get_by_role("button", name="Filter").click()
    user_row = page.get_by_role("row", name=re.compile(re.escape(email)))
    user_row.get_by_role("combobox").select_option("Manager")
    expect(page.get_by_role("status")).to_contain_text("is now Manager")
    shot(page, "18-admin-users")
    users = system.http.get("/api/v1/users", params={"q": email}, headers=system.admin).json()
    assert [u["role"] for u in users["items"] if u["email"] == email] == ["Manager"]

    page.get_by_role("link", name="Audit log").click()
    page.get_by_label("Action").fill("ProductCreated")
    page.get_by_role("button", name="Search the log").click()
    expect(page.get_by_role("cell", name="ProductCreated").first).to_be_visible()
    shot(page, "19-admin-audit")

    page.get_by_role("link", name="Dead letters").click()
    expect(page.get_by_role("heading", name=re.compile(r"^order: \d+ dead letter"))).to_be_visible()
    shot(page, "20-admin-dead-letters")


def test_the_api_docs_work_offline(page: Page, system: System) -> None:
    """`/docs` loads nothing from another host (issue 21 item 6): every request that leaves the
    gateway is refused here, and the page must still render and call the API. The `page`
    fixture fails the test on anything the docs page's CSP blocked."""
    elsewhere: list[str] = []

    def offline(route: Route) -> None:
        if route.request.url.startswith(system.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", offline)
    page.goto(f"{system.url}/docs")
    health = page.locator(".opblock").filter(has_text="/healthz")
    expect(health).to_be_visible()
    # The merged document: the services' operations too, not only the gateway's own.
    expect(page.locator(".opblock-summary-path[data-path='/api/v1/orders']").first).to_be_visible()
    health.locator(".opblock-summary").click()
    health.get_by_role("button", name="Try it out").click()
    health.get_by_role("button", name="Execute").click()
    expect(health.locator(".live-responses-table tbody .response-col_status")).to_have_text("200")
    shot(page, "21-api-docs")
    assert not elsewhere, f"the docs page reached other hosts: {elsewhere}"
