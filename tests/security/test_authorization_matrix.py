"""The authorization matrix, generated from api.md's role table (OWASP API1 BOLA, API5 BFLA).

Every row of api.md's endpoint tables (`method path | who | …`) is parsed into its endpoints; the
"who" text picks the expectation of each caller: anonymous, a Customer, another Customer (who
does not own the resources), the Manager and the Admin. A row whose "who" is unknown fails the
test, so the matrix cannot drift silently from the contract. Resources in paths belong to the
first Customer (an order, its shipment and a return of it, a notification, an address, its user
id); the calls of a row are made in api.md's order, so a state-changing call may meet the state an
earlier one left (a return approved by the Manager is a 409 for the Admin): a 409 or a 422 is the
route's business answer, past authorization.

Each call is made through the gateway; every 403 must come back as an `AccessDenied` event on
the bus and in the analytics audit trail (`outcome: denied`). Then every route the gateway keeps
from a Customer is called on the owning service directly, with the Customer's token: the service
must refuse too (defence in depth).
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gateway_service.routing import ROUTES

from devkit.bus_testing import eventually
from tests.e2e.shop import ADDRESS, PASSWORD

from .conftest import Secure, Targets

pytestmark = [pytest.mark.security, pytest.mark.asyncio(loop_scope="package")]

# The contract, as committed with the code (CI runs on a clone without the design folder next to
# it); tests/unit/test_design_copy.py keeps the copy equal to ../shared/design/api.md.
API_MD = Path(__file__).resolve().parents[2] / "docs" / "design" / "api.md"
ROLES = ("anonymous", "customer", "other", "manager", "admin")
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
ALLOW = "allow"
# What a caller may get: ALLOW (2xx, or the route's business refusal, which proves the caller
# got past authorization), or one of the denial statuses.
Expect = frozenset[str | int]
OK = frozenset({ALLOW})
UNAUTH = frozenset({401})
FORBID = frozenset({403})
HIDDEN = frozenset({404})  # another customer's resource: no existence leak
REFUSED = frozenset({403, 404})


def everyone(*_: str) -> dict[str, Expect]:
    return dict.fromkeys(ROLES, OK)


def signed_in(*_: str) -> dict[str, Expect]:
    return {"anonymous": UNAUTH} | dict.fromkeys(ROLES[1:], OK)


def only(*allowed: str) -> dict[str, Expect]:
    return {"anonymous": UNAUTH} | {r: OK if r in allowed else FORBID for r in ROLES[1:]}


def owner(*, admin: Expect = REFUSED, staff_all: bool = False) -> dict[str, Expect]:
    staff = OK if staff_all else REFUSED
    return {
        "anonymous": UNAUTH,
        "customer": OK,
        "other": HIDDEN,
        "manager": staff,
        "admin": OK if staff_all else admin,
    }


# api.md's "who" texts (up to the first parenthesis or comma that only qualifies) → expectation.
WHO: dict[str, Any] = {
    "anyone": everyone,
    "anyone (rate limited)": everyone,
    "anyone (rate limited, lockout after repeated failures)": everyone,
    "anyone with a refresh token": everyone,
    "any role": signed_in,
    "Admin": lambda method: only("admin"),
    "Manager, Admin": lambda method: only("manager", "admin"),
    "Admin (Manager read-only)": lambda method: (
        only("manager", "admin") if method == "GET" else only("admin")
    ),
    "Customer": lambda method: only("customer", "other"),
    "own; Manager/Admin all": lambda method: signed_in(),
    "own; Manager/Admin": lambda method: owner(staff_all=True),
    # "Admin may act on any" (api.md): an order's decision and payment retry are open to the
    # Admin; the other "own" rows (a notification marked read) may refuse the Admin with 403 or
    # answer 404, never a leak.
    "own": lambda method: owner(admin=frozenset({ALLOW, 403})),
    "own (before PAID); Admin": lambda method: owner(admin=OK),
    "own, while `PAYMENT_FAILED`": lambda method: owner(admin=OK),
    "Admin (or own for GET)": lambda method: owner(admin=OK) if method == "GET" else only("admin"),
    "own order's; Manager, Admin": lambda method: owner(staff_all=True),
    "own; Manager, Admin": lambda method: owner(staff_all=True),
}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # api.md's template, e.g. /api/v1/orders/{orderId}
    who: str

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    def expectation(self, role: str) -> Expect:
        if "{addressId}" in self.path:  # /users/me/…: the first Customer's address
            return owner(admin=HIDDEN)[role] if role != "manager" else HIDDEN
        return dict(WHO[self.who](self.method))[role]


def endpoints_of(cell: str, who: str) -> list[Endpoint]:
    """`GET / PATCH / DELETE /api/v1/users/{userId}`, `POST …/{id}/approve, /reject`, …"""
    found: list[Endpoint] = []
    methods: list[str] = []
    previous = ""
    for token in re.findall(r"[A-Z]+|[…/][^\s,]*", cell.replace("`", "")):
        if token in METHODS:
            methods.append(token)
            continue
        if token == "/" or not token.startswith(("/", "…")):
            continue  # `GET / PATCH`: the slash between methods
        if token.startswith("…"):  # relative to the previous path, from its matching segment
            rest = token.removeprefix("…")
            first = rest.split("/")[1]
            path = previous[: previous.index("/" + first)] + rest
        elif previous and token.count("/") == 1 and methods == []:
            path = previous.rsplit("/", 1)[0] + token  # `…/approve, /reject`, `/healthz, /readyz`
        else:
            path = token
        for method in methods or [found[-1].method]:
            found.append(Endpoint(method, path, who))
        previous, methods = path, []
    return found


def api_md_endpoints() -> list[Endpoint]:
    rows: list[Endpoint] = []
    for line in API_MD.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not re.match(r"^`?(GET|POST|PUT|PATCH|DELETE)\b", cells[0]):
            continue
        rows.extend(endpoints_of(cells[0], cells[1]))
    return rows


ENDPOINTS = api_md_endpoints()


def test_the_matrix_covers_every_row_of_api_md() -> None:
    assert len(ENDPOINTS) >= 53, [e.label for e in ENDPOINTS]
    unknown = {e.who for e in ENDPOINTS} - WHO.keys()
    assert not unknown, f"api.md has a 'who' the matrix does not know: {unknown}"
    labels = Counter(e.label for e in ENDPOINTS)
    assert max(labels.values()) == 1, labels.most_common(3)
    for expected in (
        "POST /api/v1/orders/{orderId}/reject",
        "POST /api/v1/users/me/addresses/{addressId}/default",
        "GET /readyz",
        "DELETE /api/v1/users/{userId}",
        "POST /api/v1/shipments/{shipmentId}/deliver",
        "POST /api/v1/orders/{orderId}/returns",
        "POST /api/v1/returns/{returnId}/reject",
        "POST /api/v1/returns/{returnId}/receive",
    ):
        assert expected in labels, expected


async def request_for(
    endpoint: Endpoint, targets: Targets, secure: Secure
) -> tuple[str, dict[str, Any]]:
    """The concrete path and request keywords of one call (valid bodies: a refusal is authz's)."""
    values = dict(targets.values)
    method, template = endpoint.method, endpoint.path
    if method == "DELETE" and "{userId}" in template:
        values["userId"] = targets.victim
    if method == "DELETE" and "{productId}" in template:
        values["productId"] = targets.spare_product
    if method in ("PUT", "DELETE") and "{addressId}" in template:
        values["addressId"] = targets.spare_address
    path = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)
    product = {"items": [{"productId": secure.product_id, "quantity": 1}]}
    tail = template.removeprefix("/api/v1")
    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/users/check"): {"identifier": "nobody@example.com"},
        ("POST", "/users/login"): targets.login,
        ("POST", "/users/me/details"): {"preferences": {"newsletterOptIn": False}},
        ("PUT", "/users/me/addresses/{addressId}"): ADDRESS | {"label": "office"},
        ("PATCH", "/users/{userId}"): {"phone": "+15550100"},
        ("POST", "/products"): {
            "name": "Matrix thing",
            "description": "made by the matrix",
            "category": "matrix",
            "priceCents": 100,
            "stockCount": 1,
        },
        ("PATCH", "/products/{productId}"): {"description": "patched by the matrix"},
        ("POST", "/products/{productId}/stock"): {"delta": 1, "reason": "matrix"},
        ("POST", "/orders/precheck"): product,
        ("POST", "/orders"): product,
        ("POST", "/orders/{orderId}/decision"): {"accept": True},
        ("POST", "/orders/{orderId}/payment/retry"): {},
        ("POST", "/orders/{orderId}/approve"): {"reason": "matrix"},
        ("POST", "/orders/{orderId}/reject"): {"reason": "matrix"},
        ("POST", "/orders/{orderId}/cancel"): {"reason": "matrix"},
        ("POST", "/shipments/{shipmentId}/ship"): {},
        ("POST", "/orders/{orderId}/returns"): product | {"reason": "matrix"},
        ("POST", "/returns/{returnId}/approve"): {"reason": "matrix"},
        ("POST", "/returns/{returnId}/reject"): {"reason": "matrix"},
    }
    kwargs: dict[str, Any] = {}
    if (method, tail) in bodies:
        kwargs["json"] = bodies[(method, tail)]
    if (method, tail) == ("POST", "/users/register"):
        name = f"r{secrets.token_hex(5)}"
        kwargs["json"] = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    if (method, tail) == ("POST", "/users/token/refresh"):
        logged = await secure.client.post("/api/v1/users/login", json=targets.login)
        kwargs["json"] = {"refreshToken": logged.json()["refreshToken"]}
    if (method, tail) == ("POST", "/users"):
        name = f"a{secrets.token_hex(5)}"
        kwargs["json"] = {
            "username": name,
            "email": f"{name}@example.com",
            "password": PASSWORD,
            "role": "Customer",
        }
    if (method, tail) == ("POST", "/orders"):
        kwargs["headers"] = {"Idempotency-Key": str(uuid.uuid4())}
    return path, kwargs


# A refusal that is the route's business answer, not authorization's: the caller got through.
BUSINESS = {409, 422}


def verdict(status: int) -> str | int:
    if 200 <= status < 300 or status in BUSINESS:
        return ALLOW
    return status


async def test_every_endpoint_for_every_role(secure: Secure, targets: Targets) -> None:
    client = secure.client
    mismatches: list[str] = []
    forbidden: list[tuple[str, str, str]] = []  # (role, method, concrete path)
    for endpoint in ENDPOINTS:
        for role in ROLES:
            path, kwargs = await request_for(endpoint, targets, secure)
            headers = {**secure.headers(role), **kwargs.pop("headers", {})}
            response = await client.request(endpoint.method, path, headers=headers, **kwargs)
            got = verdict(response.status_code)
            expected = endpoint.expectation(role)
            if got not in expected:
                mismatches.append(
                    f"{role:9} {endpoint.label}: {response.status_code} "
                    f"(expected {sorted(map(str, expected))}) {response.text[:160]}"
                )
            if response.status_code >= 400:
                assert response.headers["content-type"].startswith("application/problem+json")
            if response.status_code == 403:
                forbidden.append((role, endpoint.method, path))
    errors = [line[:3000] for line in secure.logs.lines if '"level": "error"' in line]
    assert not mismatches, (
        f"{len(mismatches)} cells differ:\n" + "\n".join(mismatches) + "\n" + "\n".join(errors[-3:])
    )
    assert len(ENDPOINTS) * len(ROLES) >= 265

    # Each 403 is an AccessDenied on the bus, with the caller as actor …
    user_ids = {
        "customer": secure.customer.user_id,
        "other": secure.other.user_id,
    }

    def denied() -> Counter[tuple[str, str, str]]:
        return Counter(
            (e["actor"]["role"], e["data"]["method"], e["data"]["path"])
            for e in secure.shop.events("AccessDenied")
            if e["actor"]["userId"] in user_ids.values()
            or e["actor"]["role"] in ("Manager", "Admin")
        )

    role_names = {"customer": "Customer", "other": "Customer", "manager": "Manager"}
    role_names["admin"] = "Admin"
    wanted = Counter((role_names[r], m, p) for r, m, p in forbidden)
    await eventually(lambda: not (wanted - denied()), what="an AccessDenied for every 403")

    # … and in the analytics audit trail, as denied.
    async def audited() -> bool:
        for role in ("customer", "other"):
            response = await client.get(
                "/api/v1/audit",
                params={"actorId": user_ids[role], "action": "AccessDenied", "limit": 100},
                headers=secure.shop.admin,
            )
            items = response.json()["items"]
            paths = {i["entityId"] for i in items if i["outcome"] == "denied"}
            missing = {f"{m} {p}" for r, m, p in forbidden if r == role} - paths
            if missing:
                return False
        return True

    await eventually(audited, what="every customer's 403 in the audit trail")


# The owning service of each API area (the gateway's own routes, ops, have no service).
def service_of(path: str) -> str | None:
    return ROUTES.get(path.removeprefix("/api/v1/").split("/", 1)[0])


async def test_services_refuse_what_the_gateway_refuses(secure: Secure, targets: Targets) -> None:
    """Straight to the service with a Customer's token, past the gateway: still refused."""
    checked: list[str] = []
    refused_late: list[str] = []
    for endpoint in ENDPOINTS:
        if endpoint.expectation("customer") != FORBID:
            continue
        service = service_of(endpoint.path)
        if service is None:
            continue
        path, kwargs = await request_for(endpoint, targets, secure)
        headers = {**secure.customer.headers, **kwargs.pop("headers", {})}
        response = await secure.client.request(
            endpoint.method, secure.shop.urls[service] + path, headers=headers, **kwargs
        )
        checked.append(endpoint.label)
        if response.status_code != 403:
            refused_late.append(f"{service}: {endpoint.label} → {response.status_code}")
    assert len(checked) >= 20, checked
    assert not refused_late, refused_late


async def test_filters_cannot_reach_another_customers_data(secure: Secure) -> None:
    """BOLA through query filters: a Customer's `userId` filter never widens the list."""
    client, other = secure.client, secure.other.user_id
    orders = await client.get(
        "/api/v1/orders", params={"userId": other}, headers=secure.customer.headers
    )
    if orders.status_code == 200:
        assert {o["userId"] for o in orders.json()["items"]} <= {secure.customer.user_id}
    else:
        assert orders.status_code in (403, 404), orders.text
    inbox = await client.get(
        "/api/v1/notifications", params={"userId": other}, headers=secure.customer.headers
    )
    assert inbox.status_code in (403, 404), inbox.text
    mine = await client.get(
        f"/api/v1/orders/{secure.other_order_id}/timeline", headers=secure.customer.headers
    )
    assert mine.status_code == 404 and mine.json()["code"] == "ORDER_NOT_FOUND"
    # the Manager sees everyone's orders, filtered
    staff = await client.get(
        "/api/v1/orders", params={"userId": other}, headers=secure.shop.manager
    )
    assert staff.status_code == 200
    assert {o["userId"] for o in staff.json()["items"]} == {other}
