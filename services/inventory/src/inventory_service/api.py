"""HTTP routes of the inventory service: parse, run one command, answer.

Public ones under `/api/v1/products` (reached through the gateway); `/internal/availability` is
for the order service's pre-order check and sits outside `/api/v1`, so the gateway never routes it.
Writes need the Admin role here too, whatever the gateway already checked.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from inventory_service import commands
from inventory_service.deps import DepsDep
from inventory_service.domain import NewProduct
from inventory_service.schemas import (
    AdminProductOut,
    AvailabilityAnswer,
    AvailabilityOut,
    AvailabilityQuery,
    ProductCreate,
    ProductOut,
    ProductPatch,
    StockAdjustment,
    admin_view,
    public_view,
)
from kit.auth import OptionalUser, Principal, require_roles
from kit.errors import PROBLEM_RESPONSES
from kit.internal import RequireInternal
from kit.models import DEFAULT_LIMIT, Cursor, Limit, Page
from kit.request_context import actor_from_request

router = APIRouter(prefix="/api/v1/products", tags=["products"])
internal = APIRouter(prefix="/internal", tags=["internal"], dependencies=[RequireInternal])

AdminUser = Annotated[Principal, require_roles("Admin")]

WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    k: PROBLEM_RESPONSES[k] for k in (401, 403, 404, 409, 422)
}


@router.get("", response_model=Page[ProductOut])
async def list_products(
    deps: DepsDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    category: Annotated[str | None, Query(max_length=100)] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[ProductOut]:
    """The catalogue: search by text and category, paged by cursor."""
    docs, next_cursor = await commands.list_products(
        deps, q=q, category=category, limit=limit, cursor=cursor
    )
    return Page[ProductOut](items=[public_view(d) for d in docs], next_cursor=next_cursor)


@router.get(
    "/{product_id}",
    response_model=AdminProductOut | ProductOut,
    # Anyone may read without a token; a token that is sent must be valid (else 401).
    responses={401: PROBLEM_RESPONSES[401], 404: PROBLEM_RESPONSES[404]},
)
async def get_product(
    product_id: str, deps: DepsDep, user: OptionalUser
) -> AdminProductOut | ProductOut:
    """One product; an Admin also sees its stock, authors and audit log."""
    doc = await commands.get_product(deps, product_id)
    if user is not None and user.role == "Admin":
        return admin_view(doc)
    return public_view(doc)


@router.post("", status_code=201, response_model=AdminProductOut, responses=WRITE_RESPONSES)
async def create_product_route(
    body: ProductCreate, request: Request, deps: DepsDep, admin: AdminUser
) -> AdminProductOut:
    """Add a product with its opening stock (Admin)."""
    actor = actor_from_request(request, admin)
    doc = await commands.create_product(deps, NewProduct(**body.model_dump()), actor)
    return admin_view(doc)


@router.patch("/{product_id}", response_model=AdminProductOut, responses=WRITE_RESPONSES)
async def update_product_route(
    product_id: str, body: ProductPatch, request: Request, deps: DepsDep, admin: AdminUser
) -> AdminProductOut:
    """Change a product's catalogue fields (Admin)."""
    actor = actor_from_request(request, admin)
    changes = body.model_dump(exclude_unset=True)
    return admin_view(await commands.update_product(deps, product_id, changes, actor))


@router.delete("/{product_id}", status_code=204, responses=WRITE_RESPONSES)
async def delete_product_route(
    product_id: str, request: Request, deps: DepsDep, admin: AdminUser
) -> Response:
    """Remove a product from the catalogue (soft delete, Admin)."""
    await commands.delete_product(deps, product_id, actor_from_request(request, admin))
    return Response(status_code=204)


@router.post("/{product_id}/stock", response_model=AdminProductOut, responses=WRITE_RESPONSES)
async def adjust_stock_route(
    product_id: str, body: StockAdjustment, request: Request, deps: DepsDep, admin: AdminUser
) -> AdminProductOut:
    """Receive or write off stock with a reason; the ledger keeps who, when and why (Admin)."""
    actor = actor_from_request(request, admin)
    doc = await commands.adjust_stock(deps, product_id, body.delta, body.reason, actor)
    return admin_view(doc)


@internal.post("/availability", response_model=AvailabilityAnswer)
async def check_availability(body: AvailabilityQuery, deps: DepsDep) -> AvailabilityAnswer:
    """Per line: how many are available now, and alternatives when short (order's precheck)."""
    lines = [(line.product_id, line.quantity) for line in body.items]
    answers = await commands.check_availability(deps, lines)
    return AvailabilityAnswer(items=[AvailabilityOut(**asdict(a)) for a in answers])


ROUTERS = [router, internal]
