"""HTTP routes of the inventory service.

Public ones under `/api/v1/products` (reached through the gateway); `/internal/availability` is
for the order service's pre-order check and sits outside `/api/v1`, so the gateway never routes it.
Writes need the Admin role here too, whatever the gateway already checked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field, model_validator
from pymongo.asynchronous.client_session import AsyncClientSession

from contracts import Actor, Envelope, Event
from inventory_service import store
from inventory_service.bootstrap import Deps
from inventory_service.catalog import (
    NewProduct,
    ProductNotFound,
    adjust_stock,
    create_product,
    delete_product,
    update_product,
)
from inventory_service.domain import (
    Candidate,
    InsufficientStock,
    availability_status,
    rank_alternatives,
)
from inventory_service.handlers import utcnow
from kit.auth import OptionalUser, Principal, require_roles
from kit.errors import PROBLEM_RESPONSES, Problem, conflict, not_found, validation_problem
from kit.internal import RequireInternal
from kit.models import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    Page,
    ResponseModel,
    StrictModel,
    decode_cursor,
    encode_cursor,
)
from kit.request_context import actor_from_request

router = APIRouter(prefix="/api/v1/products", tags=["products"])
internal = APIRouter(prefix="/internal", tags=["internal"], dependencies=[RequireInternal])

MAX_PRICE_CENTS = 100_000_000
MAX_STOCK = 1_000_000


def get_deps(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


DepsDep = Annotated[Deps, Depends(get_deps)]
AdminUser = Annotated[Principal, require_roles("Admin")]


# --- bodies -----------------------------------------------------------------------------------

Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class ProductCreate(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(max_length=2000)
    category: str = Field(min_length=1, max_length=100)
    price_cents: int = Field(ge=0, le=MAX_PRICE_CENTS)
    currency: Currency = "USD"
    stock_count: int = Field(ge=0, le=MAX_STOCK)
    low_stock_threshold: int = Field(5, ge=0, le=MAX_STOCK)


class ProductPatch(StrictModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    category: str | None = Field(None, min_length=1, max_length=100)
    price_cents: int | None = Field(None, ge=0, le=MAX_PRICE_CENTS)
    currency: Currency | None = None
    low_stock_threshold: int | None = Field(None, ge=0, le=MAX_STOCK)

    @model_validator(mode="after")
    def _something_to_change(self) -> ProductPatch:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        if any(getattr(self, name) is None for name in self.model_fields_set):
            raise ValueError("fields cannot be set to null")
        return self


class StockAdjustment(StrictModel):
    delta: int = Field(ge=-MAX_STOCK, le=MAX_STOCK)
    reason: str = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _nonzero(self) -> StockAdjustment:
        if self.delta == 0:
            raise ValueError("delta must not be 0")
        return self


class AvailabilityLine(StrictModel):
    product_id: str = Field(min_length=1, max_length=100)
    quantity: int = Field(ge=1, le=MAX_STOCK)


class AvailabilityQuery(StrictModel):
    items: list[AvailabilityLine] = Field(min_length=1, max_length=100)


# --- responses --------------------------------------------------------------------------------


class ProductOut(ResponseModel):
    product_id: str
    name: str
    description: str | None
    category: str
    price_cents: int
    currency: str
    stock_available: int
    low_stock: bool


class StockOut(ResponseModel):
    received: int
    available: int
    reserved: int
    committed: int


class AuditEntry(ResponseModel):
    at: datetime
    action: str
    actor_id: str | None
    changes: dict[str, Any]


class AdminProductOut(ProductOut):
    low_stock_threshold: int
    stock: StockOut
    created_by: str | None
    updated_by: str | None
    created_at: datetime
    updated_at: datetime
    audit_logs: list[AuditEntry]


class AvailabilityOut(ResponseModel):
    product_id: str
    requested: int
    available: int
    status: Literal["available", "partial", "unavailable"]
    alternatives: list[str]
    exists: bool


class AvailabilityAnswer(ResponseModel):
    items: list[AvailabilityOut]


def public_view(doc: dict[str, Any]) -> ProductOut:
    return ProductOut(
        product_id=doc["_id"],
        name=doc["name"],
        description=doc.get("description"),
        category=doc["category"],
        price_cents=doc["price_cents"],
        currency=doc.get("currency", "USD"),
        stock_available=doc["available"],
        low_stock=doc["available"] <= doc.get("low_stock_threshold", 0),
    )


def admin_view(doc: dict[str, Any]) -> AdminProductOut:
    return AdminProductOut(
        **public_view(doc).model_dump(by_alias=False),
        low_stock_threshold=doc.get("low_stock_threshold", 0),
        stock=StockOut(**{k: doc[k] for k in ("received", "available", "reserved", "committed")}),
        created_by=doc.get("created_by"),
        updated_by=doc.get("updated_by"),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        audit_logs=[AuditEntry(**entry) for entry in doc.get("audit_logs", [])],
    )


# --- writes -----------------------------------------------------------------------------------

type Command = Callable[[AsyncClientSession], Awaitable[tuple[dict[str, Any], list[Event]]]]


async def _write(deps: Deps, actor: Actor, command: Command) -> dict[str, Any]:
    """Run a catalogue command and put its events in the outbox, in one transaction."""

    async def body(session: AsyncClientSession) -> dict[str, Any]:
        doc, events = await command(session)
        await deps.outbox.add(
            session, *(Envelope.wrap(e, correlation_id=doc["_id"], actor=actor) for e in events)
        )
        return doc

    try:
        return await deps.write(body)
    except ProductNotFound as exc:
        raise product_not_found(exc.product_id) from exc
    except InsufficientStock as exc:
        raise conflict(
            "INSUFFICIENT_STOCK",
            f"Only {exc.available} units are available; cannot remove {-exc.delta}.",
            title="Insufficient stock",
            available=exc.available,
        ) from exc


def product_not_found(product_id: str) -> Problem:
    return not_found("PRODUCT_NOT_FOUND", f"No product {product_id}.")


@router.get("", response_model=Page[ProductOut])
async def list_products(
    deps: DepsDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    category: Annotated[str | None, Query(max_length=100)] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[ProductOut]:
    """The catalogue: search by text and category, paged by cursor."""
    position = decode_cursor(cursor)
    after: tuple[str, str] | None = None
    if position is not None:
        name, last_id = position.get("n"), position.get("id")
        if not isinstance(name, str) or not isinstance(last_id, str):
            raise validation_problem([{"field": "cursor", "message": "Invalid cursor"}])
        after = (name, last_id)
    docs = await store.list_products(
        deps.db, q=q or None, category=category or None, after=after, limit=limit + 1
    )
    next_cursor = None
    if len(docs) > limit:
        docs = docs[:limit]
        next_cursor = encode_cursor({"n": docs[-1]["name"], "id": docs[-1]["_id"]})
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
    doc = await store.get_product(deps.db, product_id)
    if doc is None:
        raise product_not_found(product_id)
    if user is not None and user.role == "Admin":
        return admin_view(doc)
    return public_view(doc)


WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    k: PROBLEM_RESPONSES[k] for k in (401, 403, 404, 409, 422)
}


@router.post("", status_code=201, response_model=AdminProductOut, responses=WRITE_RESPONSES)
async def create_product_route(
    body: ProductCreate, request: Request, deps: DepsDep, admin: AdminUser
) -> AdminProductOut:
    """Add a product with its opening stock (Admin)."""
    actor = actor_from_request(request, admin)
    new = NewProduct(**body.model_dump())
    doc = await _write(deps, actor, lambda s: create_product(deps.db, s, new, actor, utcnow()))
    return admin_view(doc)


@router.patch("/{product_id}", response_model=AdminProductOut, responses=WRITE_RESPONSES)
async def update_product_route(
    product_id: str, body: ProductPatch, request: Request, deps: DepsDep, admin: AdminUser
) -> AdminProductOut:
    """Change a product's catalogue fields (Admin)."""
    actor = actor_from_request(request, admin)
    changes = body.model_dump(exclude_unset=True)
    doc = await _write(
        deps, actor, lambda s: update_product(deps.db, s, product_id, changes, actor, utcnow())
    )
    return admin_view(doc)


@router.delete("/{product_id}", status_code=204, responses=WRITE_RESPONSES)
async def delete_product_route(
    product_id: str, request: Request, deps: DepsDep, admin: AdminUser
) -> Response:
    """Remove a product from the catalogue (soft delete, Admin)."""
    actor = actor_from_request(request, admin)
    await _write(deps, actor, lambda s: delete_product(deps.db, s, product_id, actor, utcnow()))
    return Response(status_code=204)


@router.post("/{product_id}/stock", response_model=AdminProductOut, responses=WRITE_RESPONSES)
async def adjust_stock_route(
    product_id: str, body: StockAdjustment, request: Request, deps: DepsDep, admin: AdminUser
) -> AdminProductOut:
    """Receive or write off stock with a reason; the ledger keeps who, when and why (Admin)."""
    actor = actor_from_request(request, admin)
    doc = await _write(
        deps,
        actor,
        lambda s: adjust_stock(deps.db, s, product_id, body.delta, body.reason, actor, utcnow()),
    )
    return admin_view(doc)


@internal.post("/availability", response_model=AvailabilityAnswer)
async def check_availability(body: AvailabilityQuery, deps: DepsDep) -> AvailabilityAnswer:
    """Per line: how many are available now, and alternatives when short (order's precheck)."""
    ids = [line.product_id for line in body.items]
    products = await store.find_products(deps.db, ids)
    answers: list[AvailabilityOut] = []
    for line in body.items:
        doc = products.get(line.product_id)
        available = int(doc["available"]) if doc else 0
        status = availability_status(line.quantity, available)
        alternatives: list[str] = []
        if doc is not None and status != "available":
            candidates: list[Candidate] = await store.alternative_candidates(
                deps.db, doc["category"], ids
            )
            alternatives = rank_alternatives(doc["price_cents"], candidates)
        answers.append(
            AvailabilityOut(
                product_id=line.product_id,
                requested=line.quantity,
                available=available,
                status=status,
                alternatives=alternatives,
                exists=doc is not None,
            )
        )
    return AvailabilityAnswer(items=answers)


ROUTERS = [router, internal]
