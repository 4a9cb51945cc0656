"""HTTP routes of the order service, under `/api/v1/orders` (reached through the gateway).

Reads answer from the order's document. Every change (place, decision, cancel, payment retry,
approve, reject) is one transaction: load, one domain step, a save conditional on the order's
version, and the raised events in the outbox. A save that lost a race with an event handler is
retried from a fresh load, so the answer is the domain's verdict on the order as it now stands.
Roles are checked here as well as at the gateway: a Customer sees and changes only their own
orders (another customer's order is a 404, never a 403), Managers and Admins see all.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import Field
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from contracts import Actor
from contracts.ids import new_id
from kit.auth import CurrentUser, Principal, require_roles
from kit.conditional import none_match, not_modified, weak_etag
from kit.errors import (
    PROBLEM_RESPONSES,
    Problem,
    conflict,
    forbidden,
    invalid_state,
    not_found,
    unprocessable,
    validation_problem,
)
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
from kit.transactions import TransactionBody
from order_service import precheck as checks
from order_service import replicas, store
from order_service.bootstrap import Deps
from order_service.domain import (
    MAX_QUANTITY,
    MIN_QUANTITY,
    STAFF,
    TERMINAL,
    Cause,
    InvalidPromoCode,
    InvalidQuantity,
    InvalidState,
    NotAllowed,
    Order,
    OrderError,
    ProductFacts,
    ProfileIncomplete,
    RetryLimitReached,
    Status,
)
from order_service.metrics import record_step
from order_service.store import ConcurrentUpdate, IdempotencyKeyReused

router = APIRouter(prefix="/api/v1/orders", tags=["orders"])

# A command that lost its save to a concurrent event is retried from a fresh load this often.
COMMAND_ATTEMPTS = 5
IDEMPOTENCY_KEY_MAX = 128


def get_deps(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


DepsDep = Annotated[Deps, Depends(get_deps)]
CustomerUser = Annotated[Principal, require_roles("Customer")]
StaffUser = Annotated[Principal, require_roles(*STAFF)]


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- bodies -----------------------------------------------------------------------------------

Id = Annotated[str, Field(min_length=1, max_length=100)]


class LineIn(StrictModel):
    product_id: Id
    # The 1…100 rule is the domain's (422 INVALID_QUANTITY); this bound only keeps numbers sane.
    quantity: int = Field(ge=-1_000_000, le=1_000_000)


class PrecheckBody(StrictModel):
    items: list[LineIn] = Field(max_length=100)


class PlaceBody(StrictModel):
    items: list[LineIn] = Field(max_length=100)
    address_id: Id | None = None
    payment_method_id: Id | None = None
    promo_code: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class DecisionBody(StrictModel):
    accept: bool


class RetryBody(StrictModel):
    payment_method_id: Id | None = None


class ReasonBody(StrictModel):
    reason: str = Field(min_length=1, max_length=500)


class CancelBody(StrictModel):
    reason: str | None = Field(None, max_length=500)


# --- responses --------------------------------------------------------------------------------


class PrecheckLine(ResponseModel):
    product_id: str
    requested: int
    available: int
    status: Literal["available", "partial", "unavailable"]
    alternatives: list[str]


class PrecheckOut(ResponseModel):
    ready: bool
    profile_complete: bool
    missing: list[str]
    items: list[PrecheckLine]
    default_address_id: str | None
    preferred_payment_method_id: str | None
    prompt_profile_completion: bool


class Placed(ResponseModel):
    order_id: str
    status: Status


class LineOut(ResponseModel):
    product_id: str
    name: str
    quantity: int
    price_cents: int
    fulfilled_quantity: int | None


class PaymentOut(ResponseModel):
    status: str
    payment_id: str | None
    attempts: int
    last_error: str | None
    payment_method_id: str


class FlagsOut(ResponseModel):
    partial_fulfillment: bool
    fraud_flag: bool


class AuditOut(ResponseModel):
    at: datetime
    action: str
    from_status: Status | None
    to_status: Status
    user_id: str | None
    role: str
    ip: str | None
    device: str | None
    region: str | None


class OrderSummary(ResponseModel):
    order_id: str
    user_id: str
    status: Status
    items: list[LineOut]
    subtotal_cents: int
    discount_cents: int
    total_cents: int
    currency: str
    flags: FlagsOut
    created_at: datetime
    updated_at: datetime


class OrderOut(OrderSummary):
    address_id: str
    address: dict[str, Any] | None
    payment: PaymentOut
    promo_code: str | None
    approval_reason: str | None
    rejection_reason: str | None
    cancel_reason: str | None
    alternatives: list[str]
    missing: list[dict[str, Any]]
    reservation_expires_at: datetime | None
    deadline: datetime | None
    audit_logs: list[AuditOut]


class TimelineItem(ResponseModel):
    at: datetime
    step: str
    service: str
    event_type: str | None
    event_id: str | None
    detail: dict[str, Any]


class Timeline(ResponseModel):
    items: list[TimelineItem]


def summary_of(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "user_id": order.user_id,
        "status": order.status,
        "items": [LineOut.model_validate(line) for line in order.items],
        "subtotal_cents": order.subtotal_cents,
        "discount_cents": order.discount_cents,
        "total_cents": order.total_cents,
        "currency": order.currency,
        "flags": FlagsOut(
            partial_fulfillment=order.partial_fulfillment, fraud_flag=order.fraud_flag
        ),
        "created_at": order.created_at,
        "updated_at": order.updated_at,
    }


def view(order: Order) -> OrderOut:
    payment = order.payment
    return OrderOut(
        **summary_of(order),
        address_id=order.address_id,
        address=order.address,
        payment=PaymentOut(
            status=payment.status,
            payment_id=payment.payment_id,
            attempts=payment.attempts,
            last_error=payment.last_error,
            payment_method_id=payment.method_id,
        ),
        promo_code=order.promo_code,
        approval_reason=order.approval_reason,
        rejection_reason=order.rejection_reason,
        cancel_reason=order.cancel_reason,
        alternatives=order.alternatives,
        missing=order.missing,
        reservation_expires_at=order.reservation_expires_at,
        deadline=order.deadline,
        audit_logs=[AuditOut.model_validate(entry) for entry in order.audit_logs],
    )


# --- errors -----------------------------------------------------------------------------------


def problem_of(exc: OrderError) -> Problem:
    """The api.md answer to a refused step."""
    if isinstance(exc, InvalidState):
        return invalid_state(exc.current_status, str(exc))
    if isinstance(exc, ProfileIncomplete):
        return conflict(
            exc.code,
            "Complete your profile first.",
            title="Profile incomplete",
            missing=exc.missing,
        )
    if isinstance(exc, NotAllowed):
        return forbidden(str(exc))
    if isinstance(exc, RetryLimitReached):
        return conflict(exc.code, str(exc), title="Payment retry limit reached", limit=exc.limit)
    extra = {
        key: value
        for key in ("product_id", "quantity", "promo_code", "address_id", "payment_method_id")
        if (value := getattr(exc, key, None)) is not None
    }
    return unprocessable(exc.code, str(exc), **extra)


def order_not_found(order_id: str) -> Problem:
    return not_found("ORDER_NOT_FOUND", f"No order {order_id}.")


def visible(order: Order | None, principal: Principal) -> Order:
    """The order when the caller may see it (owner, Manager, Admin); otherwise a 404."""
    if order is None or (principal.role not in STAFF and order.user_id != principal.user_id):
        raise order_not_found(order.order_id if order else "")
    return order


def dependency_down(name: str) -> Problem:
    return Problem(
        503,
        "SERVICE_UNAVAILABLE",
        "Service unavailable",
        f"The {name} service could not be reached; try again shortly.",
    )


# --- reads ------------------------------------------------------------------------------------

READ_RESPONSES: dict[int | str, dict[str, Any]] = {k: PROBLEM_RESPONSES[k] for k in (401, 404)}
CHANGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    k: PROBLEM_RESPONSES[k] for k in (401, 403, 404, 409, 422)
}


@router.get("", response_model=Page[OrderSummary], responses=READ_RESPONSES)
async def list_orders(
    deps: DepsDep,
    user: CurrentUser,
    status: Annotated[Status | None, Query()] = None,
    user_id: Annotated[str | None, Query(alias="userId", max_length=100)] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[OrderSummary]:
    """A Customer's own orders; all orders for Managers and Admins (filter by status, userId)."""
    owner = user_id if user.role in STAFF else user.user_id
    position = decode_cursor(cursor)
    after: tuple[datetime, str] | None = None
    if position is not None:
        created_at, last_id = position.get("c"), position.get("id")
        if not isinstance(created_at, datetime) or not isinstance(last_id, str):
            raise validation_problem([{"field": "cursor", "message": "Invalid cursor"}])
        after = (created_at, last_id)
    orders = await store.page(deps.db, user_id=owner, status=status, after=after, limit=limit + 1)
    next_cursor = None
    if len(orders) > limit:
        orders = orders[:limit]
        next_cursor = encode_cursor({"c": orders[-1].created_at, "id": orders[-1].order_id})
    return Page[OrderSummary](
        items=[OrderSummary(**summary_of(o)) for o in orders], next_cursor=next_cursor
    )


# Pollers of an order in flight (the web app, the bench's customers) are told to look again
# after this many seconds, and answered 304 without a body while nothing changed.
POLL_AGAIN_SECONDS = 1
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: the order is still the one of the `If-None-Match` tag"}
}


@router.get("/{order_id}", response_model=OrderOut, responses=READ_RESPONSES | NOT_MODIFIED)
async def get_order(
    order_id: str, request: Request, response: Response, deps: DepsDep, user: CurrentUser
) -> OrderOut | Response:
    """One order with its payment, flags and audit log (owner, Manager, Admin).

    Its `ETag` follows the order's version (every save moves it): `If-None-Match` with it is a
    304 without a body; while the order is not terminal, `Retry-After` says when to look again.
    Visibility is decided first, so a tag gets nothing more than a 404 for another's order."""
    order = visible(await store.get(deps.db, order_id), user)
    headers = {"ETag": weak_etag(order.version), "Cache-Control": "private, no-cache"}
    if order.status not in TERMINAL:
        headers["Retry-After"] = str(POLL_AGAIN_SECONDS)
    if none_match(request.headers.get("if-none-match"), headers["ETag"]):
        return not_modified(headers)
    response.headers.update(headers)
    return view(order)


@router.get("/{order_id}/timeline", response_model=Timeline, responses=READ_RESPONSES)
async def get_timeline(order_id: str, deps: DepsDep, user: CurrentUser) -> Timeline:
    """Every saga step of the order: when, which service, which event."""
    order = visible(await store.get(deps.db, order_id), user)
    entries = sorted(order.timeline, key=lambda entry: entry.at)
    return Timeline(items=[TimelineItem.model_validate(entry) for entry in entries])


# --- pre-order check and placing --------------------------------------------------------------


@router.post(
    "/precheck",
    response_model=PrecheckOut,
    responses={k: PROBLEM_RESPONSES[k] for k in (401, 403, 422)},
)
async def precheck_order(
    body: PrecheckBody, request: Request, deps: DepsDep, user: CustomerUser
) -> PrecheckOut:
    """Is the profile complete, is every line in stock, and which defaults would a quick order
    use: one round trip before checkout."""
    items = [(line.product_id, line.quantity) for line in body.items]
    for product_id, quantity in items:
        if not MIN_QUANTITY <= quantity <= MAX_QUANTITY:
            raise problem_of(InvalidQuantity(product_id, quantity))
    try:
        outcome = await checks.precheck(
            deps.db,
            user.user_id,
            items,
            users=deps.users,
            stock=deps.stock,
            authorization=request.headers.get("authorization"),
        )
    except checks.DependencyDown as exc:
        raise dependency_down(exc.service) from exc
    return PrecheckOut(
        ready=outcome.ready,
        profile_complete=outcome.profile_complete,
        missing=outcome.missing,
        items=[
            PrecheckLine(
                product_id=a.product_id,
                requested=a.requested,
                available=a.available,
                status=a.status,
                alternatives=list(a.alternatives),
            )
            for a in outcome.items
        ],
        default_address_id=outcome.default_address_id,
        preferred_payment_method_id=outcome.preferred_payment_method_id,
        prompt_profile_completion=outcome.prompt_profile_completion,
    )


@router.post(
    "",
    status_code=202,
    response_model=Placed,
    responses={k: PROBLEM_RESPONSES[k] for k in (401, 403, 409, 422)},
)
async def place_order(
    body: PlaceBody,
    request: Request,
    response: Response,
    deps: DepsDep,
    user: CustomerUser,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", max_length=IDEMPOTENCY_KEY_MAX)
    ] = None,
) -> Placed:
    """Place an order: priced from the catalogue, the profile's defaults when omitted (quick
    order), a promo code redeemed with it. 202: the saga goes on in the background."""
    key = (idempotency_key or "").strip()
    if not key:
        raise unprocessable(
            "IDEMPOTENCY_KEY_REQUIRED", "Send an Idempotency-Key header with every new order."
        )
    body_hash = store.request_hash(body.model_dump(mode="json"))
    earlier = await store.previous_request(deps.db, user.user_id, key)
    if earlier is not None:
        return replay(earlier, body_hash, user.user_id, key, response)

    actor = actor_from_request(request, user)
    items = [(line.product_id, line.quantity) for line in body.items]
    profile = await checks.customer_profile(
        deps.db, user.user_id, deps.users, request.headers.get("authorization")
    )
    if profile is not None and profile.deleted:
        raise forbidden("This account cannot place orders.", code="ACCOUNT_DISABLED")
    try:
        if profile is None:
            raise ProfileIncomplete(user.user_id, ["address", "paymentMethod"])
        address_id, method_id = profile.checkout(body.address_id, body.payment_method_id)
        catalogue = await product_facts(deps, [product_id for product_id, _ in items])
        promotion = None
        if body.promo_code is not None:
            promotion = await replicas.get_promotion(deps.db, user.user_id, body.promo_code)
            if promotion is None:
                raise InvalidPromoCode(body.promo_code)
        now = utcnow()
        order = Order.place(
            order_id=new_id(),
            user_id=user.user_id,
            items=items,
            catalogue=catalogue,
            address_id=address_id,
            payment_method_id=method_id,
            cause=Cause(at=now, actor=actor),
            promotion=promotion,
            partial_preference=profile.partial_fulfillment,
            address=profile.address(address_id),
            policy=deps.settings.policy(),
        )
        placed = Placed(order_id=order.order_id, status=order.status)

        async def place(session: AsyncClientSession) -> store.IdempotentRequest:
            first = await store.remember_request(
                deps.db,
                user_id=user.user_id,
                key=key,
                body_hash=body_hash,
                order_id=order.order_id,
                response=placed.model_dump(),
                now=now,
                session=session,
            )
            if first.order_id != order.order_id:
                return first  # a concurrent request with this key won: answer its order
            if promotion is not None and not await replicas.mark_redeemed(
                deps.db, user.user_id, promotion.code, session
            ):
                raise InvalidPromoCode(promotion.code)
            fresh = order.model_copy(deep=True)
            await store.save(
                deps.db,
                fresh,
                session,
                events=[r.envelope(order.order_id, actor=actor) for r in order.events],
                outbox=deps.documents(store.ORDERS),
            )
            return first

        try:
            first = await deps.write(place)
        except DuplicateKeyError:
            # A concurrent first use of the key committed while this one ran: answer with it.
            winner = await store.previous_request(deps.db, user.user_id, key)
            if winner is None:
                raise
            first = winner
    except OrderError as exc:
        raise problem_of(exc) from exc
    except IdempotencyKeyReused as exc:
        raise unprocessable(exc.code, str(exc)) from exc
    except checks.DependencyDown as exc:
        raise dependency_down(exc.service) from exc
    return replay(first, body_hash, user.user_id, key, response)


def replay(
    first: store.IdempotentRequest, body_hash: str, user_id: str, key: str, response: Response
) -> Placed:
    """The answer given to the key's first use (422 when the body differs)."""
    if first.request_hash != body_hash:
        raise unprocessable(
            "IDEMPOTENCY_KEY_REUSED",
            str(IdempotencyKeyReused(user_id, key)),
        )
    response.headers["Location"] = f"/api/v1/orders/{first.order_id}"
    return Placed.model_validate(first.response)


async def product_facts(deps: Deps, ids: list[str]) -> dict[str, ProductFacts]:
    """The catalogue replica, completed by inventory for products it has not heard of yet."""
    found = await replicas.catalogue(deps.db, ids)
    missing = [product_id for product_id in dict.fromkeys(ids) if product_id not in found]
    if missing:
        found |= await deps.stock.products(missing)
    return found


# --- changes ----------------------------------------------------------------------------------

type Step = Callable[[Order, Cause], None]


async def change(
    deps: Deps,
    request: Request,
    user: Principal,
    order_id: str,
    step: Step,
    *,
    owner_only: bool = False,
) -> Order:
    """Load the order, check the caller may act on it, apply `step`, save, emit; retried on a
    lost race. Owner-only steps answer a Manager or Admin 403 (they can see the order)."""
    actor: Actor = actor_from_request(request, user)

    async def body(session: AsyncClientSession) -> Order:
        order = visible(await store.get(deps.db, order_id, session), user)
        if owner_only and order.user_id != user.user_id and user.role != "Admin":
            raise forbidden("Only the customer who placed the order (or an Admin) can do this.")
        before[order_id] = order.status
        step(order, Cause(at=utcnow(), actor=actor))
        await store.save(
            deps.db,
            order,
            session,
            events=[r.envelope(order_id, actor=actor) for r in order.pull_events()],
            outbox=deps.documents(store.ORDERS),
        )
        return order

    before: dict[str, Status] = {}
    for attempt in range(1, COMMAND_ATTEMPTS + 1):
        try:
            order = await run(deps, body)
        except ConcurrentUpdate as exc:
            if attempt == COMMAND_ATTEMPTS:
                raise conflict(
                    "CONCURRENT_UPDATE", "The order kept changing meanwhile; try again."
                ) from exc
            continue
        record_step(order, before[order_id])
        return order
    raise AssertionError("unreachable")  # pragma: no cover


async def run(deps: Deps, body: TransactionBody[Order]) -> Order:
    try:
        return await deps.write(body)
    except OrderError as exc:
        raise problem_of(exc) from exc


@router.post("/{order_id}/decision", response_model=OrderOut, responses=CHANGE_RESPONSES)
async def decide(
    order_id: str, body: DecisionBody, request: Request, deps: DepsDep, user: CurrentUser
) -> OrderOut:
    """Accept the partial reservation (go on with fewer units) or cancel the order."""
    policy = deps.settings.policy()
    order = await change(
        deps,
        request,
        user,
        order_id,
        lambda o, c: o.decide(body.accept, c, policy),
        owner_only=True,
    )
    return view(order)


@router.post("/{order_id}/cancel", response_model=OrderOut, responses=CHANGE_RESPONSES)
async def cancel(
    order_id: str,
    request: Request,
    deps: DepsDep,
    user: CurrentUser,
    body: CancelBody | None = None,
) -> OrderOut:
    """The customer before payment, an Admin any unfinished order: CANCELLED, stock released."""
    if user.role == "Manager":
        raise forbidden(
            "Managers approve or reject orders; cancelling is the customer's or an Admin's."
        )
    reason = body.reason if body else None
    order = await change(
        deps,
        request,
        user,
        order_id,
        lambda o, c: o.cancel(user.user_id, user.role, reason, c),
        owner_only=user.role != "Admin",
    )
    return view(order)


@router.post(
    "/{order_id}/payment/retry",
    status_code=202,
    response_model=OrderOut,
    responses=CHANGE_RESPONSES,
)
async def retry_payment(
    order_id: str,
    request: Request,
    deps: DepsDep,
    user: CurrentUser,
    body: RetryBody | None = None,
) -> OrderOut:
    """Try the payment again while PAYMENT_FAILED, with another stored method if given (the
    customer, or an Admin on the customer's behalf)."""
    method = body.payment_method_id if body else None
    if method is not None:
        owner = visible(await store.get(deps.db, order_id), user).user_id
        # The owner's own token reads the freshest profile; an Admin's reads the replica.
        token = request.headers.get("authorization") if owner == user.user_id else None
        profile = await checks.customer_profile(deps.db, owner, deps.users, token)
        if profile is None or method not in profile.payment_method_ids:
            raise unprocessable(
                "UNKNOWN_PAYMENT_METHOD",
                f"No payment method {method} in the profile.",
                payment_method_id=method,
            )
    policy = deps.settings.policy()
    order = await change(
        deps,
        request,
        user,
        order_id,
        lambda o, c: o.retry_payment(method, c, policy),
        owner_only=True,
    )
    return view(order)


@router.post("/{order_id}/approve", response_model=OrderOut, responses=CHANGE_RESPONSES)
async def approve(
    order_id: str, body: ReasonBody, request: Request, deps: DepsDep, user: StaffUser
) -> OrderOut:
    """A Manager or Admin lets a high-value or flagged order be charged."""
    policy = deps.settings.policy()
    order = await change(
        deps, request, user, order_id, lambda o, c: o.approve(user.user_id, body.reason, c, policy)
    )
    return view(order)


@router.post("/{order_id}/reject", response_model=OrderOut, responses=CHANGE_RESPONSES)
async def reject(
    order_id: str, body: ReasonBody, request: Request, deps: DepsDep, user: StaffUser
) -> OrderOut:
    """A Manager or Admin refuses the order: REJECTED, stock released."""
    order = await change(
        deps, request, user, order_id, lambda o, c: o.reject(user.user_id, body.reason, c)
    )
    return view(order)


ROUTERS = [router]
