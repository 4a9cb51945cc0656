"""HTTP routes of the shipping service, under `/api/v1/shipments` (reached through the gateway).

The warehouse queue is for Managers and Admins; one shipment is also its order's owner's (another
customer's is a 404, never a 403); ship and deliver are the Admin's. Roles are checked here as
well as at the gateway. Each route parses, runs one command and answers.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from kit.auth import CurrentUser, Principal, require_roles
from kit.errors import PROBLEM_RESPONSES
from kit.models import DEFAULT_LIMIT, Cursor, Limit, Page
from kit.request_context import actor_from_request
from shipping_service import commands
from shipping_service.deps import DepsDep
from shipping_service.domain import STAFF, ShipmentStatus
from shipping_service.schemas import ShipBody, ShipmentOut, view

router = APIRouter(prefix="/api/v1/shipments", tags=["shipments"])

StaffUser = Annotated[Principal, require_roles(*STAFF)]
AdminUser = Annotated[Principal, require_roles("Admin")]

LIST_RESPONSES: dict[int | str, dict[str, Any]] = {k: PROBLEM_RESPONSES[k] for k in (401, 403, 422)}
READ_RESPONSES: dict[int | str, dict[str, Any]] = {k: PROBLEM_RESPONSES[k] for k in (401, 404)}
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    k: PROBLEM_RESPONSES[k] for k in (401, 403, 404, 409, 422)
}


@router.get("", response_model=Page[ShipmentOut], responses=LIST_RESPONSES)
async def list_shipments(
    deps: DepsDep,
    _staff: StaffUser,
    status: Annotated[ShipmentStatus | None, Query()] = None,
    order_id: Annotated[str | None, Query(alias="orderId", max_length=100)] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[ShipmentOut]:
    """The warehouse queue, oldest first (filter by status, orderId) (Manager, Admin)."""
    docs, next_cursor = await commands.list_shipments(
        deps, status=status, order_id=order_id, limit=limit, cursor=cursor
    )
    return Page[ShipmentOut](items=[view(d) for d in docs], next_cursor=next_cursor)


@router.get("/{shipment_id}", response_model=ShipmentOut, responses=READ_RESPONSES)
async def get_shipment(shipment_id: str, deps: DepsDep, user: CurrentUser) -> ShipmentOut:
    """One shipment (its order's owner, Manager, Admin)."""
    return view(await commands.get_shipment(deps, user, shipment_id))


@router.post("/{shipment_id}/ship", response_model=ShipmentOut, responses=WRITE_RESPONSES)
async def ship_route(
    shipment_id: str,
    request: Request,
    deps: DepsDep,
    admin: AdminUser,
    body: ShipBody | None = None,
) -> ShipmentOut:
    """Hand a PENDING parcel to a carrier: SHIPPED with its tracking number (Admin)."""
    given = body or ShipBody()
    doc = await commands.ship(
        deps,
        shipment_id,
        actor_from_request(request, admin),
        carrier=given.carrier,
        tracking_number=given.tracking_number,
    )
    return view(doc)


@router.post("/{shipment_id}/deliver", response_model=ShipmentOut, responses=WRITE_RESPONSES)
async def deliver_route(
    shipment_id: str, request: Request, deps: DepsDep, admin: AdminUser
) -> ShipmentOut:
    """The parcel reached its address: DELIVERED (Admin)."""
    return view(await commands.deliver(deps, shipment_id, actor_from_request(request, admin)))


ROUTERS = [router]
