"""What the browser tests share: the running system's API (to arrange a test's starting point),
the accounts, Chromium's flags, and screenshots for review."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "web" / "dist"
CHROMIUM = "/usr/bin/chromium"
REPORTS = ROOT / "tests" / "reports" / "web"
ADMIN = ("web-admin@example.com", "admin-password-1")
MANAGER = ("web-manager@example.com", "manager-password-1")
PASSWORD = "long-enough-pw"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class System:
    """The running shop: its URL, and an API client for arranging what a test starts from."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=20)
        self.admin = self.login(*ADMIN)

    def login(self, identifier: str, password: str = PASSWORD) -> dict[str, str]:
        answer = self.http.post(
            "/api/v1/users/login", json={"identifier": identifier, "password": password}
        )
        assert answer.status_code == 200, answer.text
        return {"authorization": f"Bearer {answer.json()['accessToken']}"}

    def product(self, name: str, price_cents: int, stock: int, category: str = "web") -> str:
        body = {
            "name": name,
            "description": "made by a browser test",
            "category": category,
            "priceCents": price_cents,
            "stockCount": stock,
        }
        answer = self.http.post("/api/v1/products", json=body, headers=self.admin)
        assert answer.status_code == 201, answer.text
        product_id: str = answer.json()["productId"]
        return product_id

    def stock(self, product_id: str, delta: int, reason: str) -> None:
        answer = self.http.post(
            f"/api/v1/products/{product_id}/stock",
            json={"delta": delta, "reason": reason},
            headers=self.admin,
        )
        assert answer.status_code == 200, answer.text

    def customer(self, *cards: str, partial: str = "ask") -> tuple[str, dict[str, str]]:
        """A registered customer with an address and cards (first = default): email, headers."""
        name = f"web{secrets.token_hex(4)}"
        email = f"{name}@example.com"
        body = {"username": name, "email": email, "password": PASSWORD}
        answer = self.http.post("/api/v1/users/register", json=body)
        assert answer.status_code == 201, answer.text
        headers = {"authorization": f"Bearer {answer.json()['accessToken']}"}
        details = {
            "addresses": [
                {
                    "label": "home",
                    "line1": "1 Main St",
                    "city": "Springfield",
                    "state": "IL",
                    "zip": "12345",
                    "country": "US",
                }
            ],
            "paymentMethods": [{"type": "card", "token": t} for t in cards or ("pm_card_ok",)],
            "preferences": {"partialFulfillment": partial},
        }
        answer = self.http.post("/api/v1/users/me/details", json=details, headers=headers)
        assert answer.status_code == 200, answer.text
        return email, headers

    def order(self, headers: dict[str, str], product_id: str, quantity: int) -> str:
        answer = self.http.post(
            "/api/v1/orders",
            json={"items": [{"productId": product_id, "quantity": quantity}]},
            headers={**headers, "Idempotency-Key": secrets.token_hex(8)},
        )
        assert answer.status_code == 202, answer.text
        order_id: str = answer.json()["orderId"]
        return order_id

    def wait_for(self, order_id: str, status: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        order: dict[str, Any] = {}
        while time.monotonic() < deadline:
            order = self.http.get(f"/api/v1/orders/{order_id}", headers=self.admin).json()
            if order.get("status") == status:
                return order
            time.sleep(0.1)
        raise AssertionError(f"order {order_id} is {order.get('status')}, not {status}")


def shot(page: Page, name: str) -> None:
    """A full-page screenshot for review: tests/reports/web/<name>.png."""
    page.screenshot(path=str(REPORTS / f"{name}.png"), full_page=True)
