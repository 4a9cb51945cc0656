"""The shipments API: the whole app (lifespan, auth, problem+json) on the embedded store, with
the in-memory bus carrying OrderConfirmed in and the Shipment* events out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from shipping_service.carrier import SANDBOX_CARRIER, is_tracking_number
from shipping_service.domain import shipment_id_for

from contracts.shipping import ShipmentCreated, ShipmentDelivered, ShipmentDispatched

from .conftest import Start, confirmed, token

pytestmark = pytest.mark.integration

ADMIN = token("Admin", "admin-1")
MANAGER = token("Manager", "manager-1")
OWNER = token("Customer", "u1")
STRANGER = token("Customer", "u2")
BASE = "/api/v1/shipments"


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_the_warehouse_journey_pending_shipped_delivered(start_shipping: Start) -> None:
    async with start_shipping() as shop:
        await shop.confirm(confirmed("o1", ("lamp", 2), ("gone", 0)))
        shipment_id = shipment_id_for("o1")

        pending = await shop.http.get(f"{BASE}/{shipment_id}", headers=OWNER)
        assert pending.status_code == 200, pending.text
        body = pending.json()
        assert body["status"] == "PENDING" and body["orderId"] == "o1" and body["userId"] == "u1"
        assert body["lines"] == [{"productId": "lamp", "quantity": 2}]
        assert body["address"]["line1"] == "1 Quay Street"
        assert body["carrier"] is None and body["shippedAt"] is None

        shipped = await shop.http.post(f"{BASE}/{shipment_id}/ship", headers=ADMIN)
        assert shipped.status_code == 200, shipped.text
        parcel = shipped.json()
        assert parcel["status"] == "SHIPPED" and parcel["carrier"] == SANDBOX_CARRIER
        assert is_tracking_number(parcel["trackingNumber"]) and parcel["shippedAt"]

        again = await shop.http.post(f"{BASE}/{shipment_id}/ship", json={}, headers=ADMIN)
        assert again.status_code == 409
        assert again.headers["content-type"].startswith("application/problem+json")
        assert again.json()["code"] == "INVALID_STATE"
        assert again.json()["currentStatus"] == "SHIPPED"

        delivered = await shop.http.post(f"{BASE}/{shipment_id}/deliver", headers=ADMIN)
        assert delivered.status_code == 200 and delivered.json()["status"] == "DELIVERED"
        assert delivered.json()["deliveredAt"]
        twice = await shop.http.post(f"{BASE}/{shipment_id}/deliver", headers=ADMIN)
        assert twice.status_code == 409 and twice.json()["currentStatus"] == "DELIVERED"

        assert len(shop.bus.of_type(ShipmentCreated)) == 1
        [dispatched] = shop.bus.of_type(ShipmentDispatched)
        assert dispatched.data.tracking_number == parcel["trackingNumber"]
        assert dispatched.actor.user_id == "admin-1" and dispatched.actor.role == "Admin"
        assert len(shop.bus.of_type(ShipmentDelivered)) == 1


async def test_an_admin_gives_the_carrier_and_tracking_number(start_shipping: Start) -> None:
    async with start_shipping() as shop:
        await shop.confirm(confirmed("o1", ("lamp", 1)))
        url = f"{BASE}/{shipment_id_for('o1')}/ship"

        unknown_field = await shop.http.post(url, json={"courier": "DHL"}, headers=ADMIN)
        assert unknown_field.status_code == 422
        no_number = await shop.http.post(url, json={"carrier": "DHL"}, headers=ADMIN)
        assert no_number.status_code == 422
        shipped = await shop.http.post(
            url, json={"carrier": "DHL", "trackingNumber": "JD0146000062"}, headers=ADMIN
        )
        assert shipped.status_code == 200, shipped.text
        assert shipped.json()["carrier"] == "DHL"
        assert shipped.json()["trackingNumber"] == "JD0146000062"


async def test_deliver_while_pending_is_invalid_state(start_shipping: Start) -> None:
    async with start_shipping() as shop:
        await shop.confirm(confirmed("o1", ("lamp", 1)))
        early = await shop.http.post(f"{BASE}/{shipment_id_for('o1')}/deliver", headers=ADMIN)
        assert early.status_code == 409
        problem = early.json()
        assert (problem["code"], problem["currentStatus"]) == ("INVALID_STATE", "PENDING")
        assert shop.bus.of_type(ShipmentDelivered) == []


async def test_who_may_see_and_move_a_shipment(start_shipping: Start) -> None:
    async with start_shipping() as shop:
        await shop.confirm(confirmed("o1", ("lamp", 1)))
        shipment_id = shipment_id_for("o1")
        url = f"{BASE}/{shipment_id}"

        for who in (OWNER, MANAGER, ADMIN):
            assert (await shop.http.get(url, headers=who)).status_code == 200
        other = await shop.http.get(url, headers=STRANGER)
        assert other.status_code == 404 and other.json()["code"] == "SHIPMENT_NOT_FOUND"
        missing = await shop.http.get(f"{BASE}/nope", headers=ADMIN)
        assert missing.status_code == 404 and missing.json()["code"] == "SHIPMENT_NOT_FOUND"
        assert (await shop.http.get(url)).status_code == 401

        # Ship and deliver are the Admin's: a Customer (even the owner) and a Manager get 403.
        for who in (OWNER, MANAGER):
            for action in ("ship", "deliver"):
                denied = await shop.http.post(f"{url}/{action}", headers=who)
                assert denied.status_code == 403, (action, denied.text)
        # The queue is the staff's.
        assert (await shop.http.get(BASE, headers=OWNER)).status_code == 403
        doc = await shop.deps.store.get(shipment_id)
        assert doc is not None and doc["status"] == "PENDING"
        assert shop.bus.of_type(ShipmentDispatched) == []


async def test_the_warehouse_queue_filters_and_pages_oldest_first(start_shipping: Start) -> None:
    async with start_shipping() as shop:
        for n in range(5):
            await shop.confirm(confirmed(f"o{n}", ("lamp", 1)))
        await shop.http.post(f"{BASE}/{shipment_id_for('o1')}/ship", headers=ADMIN)

        everything = (await shop.http.get(BASE, headers=ADMIN)).json()["items"]
        # Oldest first (by creation time, then id: two created in one millisecond keep an order).
        assert everything == sorted(everything, key=lambda s: (at(s["createdAt"]), s["shipmentId"]))
        assert sorted(s["orderId"] for s in everything) == ["o0", "o1", "o2", "o3", "o4"]
        pending = (await shop.http.get(BASE, params={"status": "PENDING"}, headers=MANAGER)).json()
        assert [s["orderId"] for s in pending["items"]] == [
            s["orderId"] for s in everything if s["orderId"] != "o1"
        ]
        assert pending["nextCursor"] is None
        shipped = (await shop.http.get(BASE, params={"status": "SHIPPED"}, headers=ADMIN)).json()
        assert [s["orderId"] for s in shipped["items"]] == ["o1"]
        by_order = (await shop.http.get(BASE, params={"orderId": "o3"}, headers=ADMIN)).json()
        assert [s["shipmentId"] for s in by_order["items"]] == [shipment_id_for("o3")]

        seen: list[str] = []
        params: dict[str, Any] = {"limit": 2}
        while True:
            page = (await shop.http.get(BASE, params=params, headers=ADMIN)).json()
            seen += [s["orderId"] for s in page["items"]]
            if page["nextCursor"] is None:
                break
            params["cursor"] = page["nextCursor"]
        assert seen == [s["orderId"] for s in everything]

        assert (await shop.http.get(BASE, params={"limit": 101}, headers=ADMIN)).status_code == 422
        bad = await shop.http.get(BASE, params={"status": "LOST"}, headers=ADMIN)
        assert bad.status_code == 422
