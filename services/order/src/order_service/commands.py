"""The order service's use cases: load, one domain step, write through the unit of work.

Every change of an order is one write of its document: an update conditional on the order's
version that carries the events the aggregate raised in the order's own outbox (`bus.documents`).
A customer's or staff member's change runs it in a transaction (`deps.write`) and is retried from
a fresh load when it lost a race with an event; placing adds the idempotency key (and a redeemed
promotion) to that transaction. A saga step (`advance`) is a single-document step of the handler
that runs it: one read, one conditional update that also notes the handled event's id, no
transaction. Commands answer a refusal with a `Problem` (api.md's status and code).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from contracts import Actor, Envelope
from contracts.analytics import PromotionGranted
from contracts.ids import new_id
from contracts.inventory import (
    ProductCreated,
    ProductDeleted,
    ProductUpdated,
    StockCommitFailed,
    StockCommitted,
    StockPartiallyReserved,
    StockReleased,
    StockReserved,
    StockReturned,
    StockUnavailable,
)
from contracts.payment import (
    PaymentAuthorized,
    PaymentCaptured,
    PaymentFailed,
    PaymentRefunded,
    PaymentRefundFailed,
    PaymentReviewRequired,
    PaymentVoided,
)
from contracts.shipping import ShipmentCreated, ShipmentDelivered, ShipmentDispatched
from contracts.user import UserDeleted, UserProfileUpdated, UserRegistered, UserRoleChanged
from kit.auth.principal import Principal
from kit.errors import (
    Problem,
    conflict,
    forbidden,
    invalid_state,
    not_found,
    unprocessable,
)
from kit.models import time_cursor, time_position
from kit.mongo import Db, Doc, Session
from order_service import precheck as checks
from order_service import replicas
from order_service.deps import Context, Deps
from order_service.domain import (
    MAX_QUANTITY,
    MIN_QUANTITY,
    STAFF,
    WAITS,
    Cause,
    InvalidPromoCode,
    InvalidQuantity,
    InvalidState,
    NotAllowed,
    NotDelivered,
    Order,
    OrderError,
    OrderReturn,
    Precheck,
    ProductFacts,
    ProfileIncomplete,
    Promotion,
    RetryLimitReached,
    ReturnNotFound,
    ReturnStatus,
    ReturnWindowClosed,
    Status,
    TimelineEntry,
)
from order_service.metrics import record_step
from order_service.store import (
    ORDERS,
    ConcurrentUpdate,
    IdempotentRequest,
    ReturnRow,
    request_hash,
)

log = structlog.get_logger("order.commands")

# A command that lost its save to a concurrent event is retried from a fresh load this often.
COMMAND_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks: the verified principal, the request's audit actor, and its bearer token (the
    owner's own token reads the freshest profile from the user service)."""

    principal: Principal
    actor: Actor
    authorization: str | None = None

    @property
    def user_id(self) -> str:
        return self.principal.user_id

    @property
    def role(self) -> str:
        return self.principal.role


# --- problems ---------------------------------------------------------------------------------


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
    if isinstance(exc, NotDelivered):
        return conflict(exc.code, str(exc), title="Not delivered yet")
    if isinstance(exc, ReturnWindowClosed):
        return conflict(
            exc.code, str(exc), title="Return window closed", closed_at=exc.closed_at.isoformat()
        )
    if isinstance(exc, ReturnNotFound):
        return return_not_found(exc.return_id)
    keys = ("product_id", "quantity", "returnable", "promo_code", "address_id", "payment_method_id")
    extra = {key: value for key in keys if (value := getattr(exc, key, None)) is not None}
    return unprocessable(exc.code, str(exc), **extra)


def order_not_found(order_id: str) -> Problem:
    return not_found("ORDER_NOT_FOUND", f"No order {order_id}.")


def return_not_found(return_id: str) -> Problem:
    return not_found("RETURN_NOT_FOUND", f"No return {return_id}.")


def dependency_down(name: str) -> Problem:
    return Problem(
        503,
        "SERVICE_UNAVAILABLE",
        "Service unavailable",
        f"The {name} service could not be reached; try again shortly.",
    )


def visible(order: Order | None, caller: Caller) -> Order:
    """The order when the caller may see it (owner, Manager, Admin); otherwise a 404."""
    if order is None or (caller.role not in STAFF and order.user_id != caller.user_id):
        raise order_not_found(order.order_id if order else "")
    return order


# --- reads ------------------------------------------------------------------------------------


async def get_order(deps: Deps, caller: Caller, order_id: str) -> Order:
    """One order the caller may see (a Customer's own; any for Managers and Admins)."""
    return visible(await deps.store.get(order_id), caller)


async def timeline(deps: Deps, caller: Caller, order_id: str) -> list[TimelineEntry]:
    """Every saga step of the order, oldest first."""
    order = await get_order(deps, caller, order_id)
    return sorted(order.timeline, key=lambda entry: entry.at)


async def list_orders(
    deps: Deps,
    caller: Caller,
    *,
    status: Status | None,
    user_id: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Order], str | None]:
    """A Customer's own orders, all orders for staff (`user_id` filters), newest first; one
    page and the cursor of the next (None on the last page)."""
    owner = user_id if caller.role in STAFF else caller.user_id
    after = time_position(cursor)
    orders = await deps.store.page(user_id=owner, status=status, after=after, limit=limit + 1)
    if len(orders) <= limit:
        return orders, None
    orders = orders[:limit]
    return orders, time_cursor(orders[-1].created_at, orders[-1].order_id)


async def precheck(deps: Deps, caller: Caller, items: Sequence[tuple[str, int]]) -> Precheck:
    """Is the profile complete, is every line in stock, which defaults would a quick order use."""
    for product_id, quantity in items:
        if not MIN_QUANTITY <= quantity <= MAX_QUANTITY:
            raise problem_of(InvalidQuantity(product_id, quantity))
    try:
        return await checks.precheck(
            deps.db,
            caller.user_id,
            items,
            users=deps.users,
            stock=deps.stock,
            authorization=caller.authorization,
        )
    except checks.DependencyDown as exc:
        raise dependency_down(exc.service) from exc


# --- placing ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewOrder:
    """A placement as the customer asked for it: the lines, and the address, payment method
    and promo code when given (the profile's defaults otherwise)."""

    items: tuple[tuple[str, int], ...]
    address_id: str | None = None
    payment_method_id: str | None = None
    promo_code: str | None = None

    def request_hash(self) -> str:
        """The digest the key's first use is remembered with: the parsed request body's
        (snake_case, as `PlaceBody.model_dump(mode="json")` gives it)."""
        return request_hash(
            {
                "items": [{"product_id": p, "quantity": q} for p, q in self.items],
                "address_id": self.address_id,
                "payment_method_id": self.payment_method_id,
                "promo_code": self.promo_code,
            }
        )


def placed_answer(order: Order) -> Doc:
    """The 202 body of a placement, remembered with the key to answer its replays."""
    return {"orderId": order.order_id, "status": order.status}


async def place_order(
    deps: Deps, caller: Caller, new: NewOrder, key: str | None
) -> IdempotentRequest:
    """Place an order once per `Idempotency-Key` (per user, 24 h); the key's first use.

    The idempotency rule, whole: no key is 422 `IDEMPOTENCY_KEY_REQUIRED`; a key used before
    answers its first use again, or 422 `IDEMPOTENCY_KEY_REUSED` when the body differs. A key's
    first use writes the order (its OrderPlaced, PromotionRedeemed in the order's outbox), the
    redeemed promotion and the key in one transaction; of two first uses racing, the one that
    commits first wins and the other answers with its order.
    """
    key = (key or "").strip()
    if not key:
        raise unprocessable(
            "IDEMPOTENCY_KEY_REQUIRED", "Send an Idempotency-Key header with every new order."
        )
    body_hash = new.request_hash()
    first = await deps.store.previous_request(caller.user_id, key)
    if first is None:
        try:
            order, promotion = await _new_order(deps, caller, new)
            first = await _store_placement(deps, caller, order, promotion, key, body_hash)
        except OrderError as exc:
            raise problem_of(exc) from exc
        except checks.DependencyDown as exc:
            raise dependency_down(exc.service) from exc
    if first.request_hash != body_hash:
        raise unprocessable(
            "IDEMPOTENCY_KEY_REUSED",
            f"idempotency key {key} of {caller.user_id} was used for another request",
        )
    return first


async def _new_order(deps: Deps, caller: Caller, new: NewOrder) -> tuple[Order, Promotion | None]:
    """The order as the domain prices it from the replicas (not stored yet)."""
    user_id = caller.user_id
    profile = await checks.customer_profile(deps.db, user_id, deps.users, caller.authorization)
    if profile is not None and profile.deleted:
        raise forbidden("This account cannot place orders.", code="ACCOUNT_DISABLED")
    if profile is None:
        raise ProfileIncomplete(user_id, ["address", "paymentMethod"])
    address_id, method_id = profile.checkout(new.address_id, new.payment_method_id)
    catalogue = await product_facts(deps, [product_id for product_id, _ in new.items])
    promotion = None
    if new.promo_code is not None:
        promotion = await replicas.get_promotion(deps.db, user_id, new.promo_code)
        if promotion is None:
            raise InvalidPromoCode(new.promo_code)
    order = Order.place(
        order_id=new_id(),
        user_id=user_id,
        items=new.items,
        catalogue=catalogue,
        address_id=address_id,
        payment_method_id=method_id,
        cause=Cause(at=deps.clock(), actor=caller.actor),
        promotion=promotion,
        partial_preference=profile.partial_fulfillment,
        address=profile.address(address_id),
        policy=deps.policy,
    )
    return order, promotion


async def _store_placement(
    deps: Deps,
    caller: Caller,
    order: Order,
    promotion: Promotion | None,
    key: str,
    body_hash: str,
) -> IdempotentRequest:
    """The key, the promotion's redemption and the order with its events: one transaction."""
    user_id, actor = caller.user_id, caller.actor

    async def place(session: AsyncClientSession) -> IdempotentRequest:
        first = await deps.store.remember_request(
            user_id=user_id,
            key=key,
            body_hash=body_hash,
            order_id=order.order_id,
            response=placed_answer(order),
            now=order.created_at,
            session=session,
        )
        if first.order_id != order.order_id:
            return first  # a concurrent request with this key won: answer as it was answered
        if promotion is not None and not await replicas.mark_redeemed(
            deps.db, user_id, promotion.code, session
        ):
            raise InvalidPromoCode(promotion.code)
        await deps.store.save(
            order.model_copy(deep=True),
            session,
            events=[r.envelope(order.order_id, actor=actor) for r in order.events],
            outbox=deps.documents(ORDERS),
        )
        return first

    try:
        return await deps.write(place)
    except DuplicateKeyError:
        # A concurrent first use of the key committed while this one ran: answer with it.
        winner = await deps.store.previous_request(user_id, key)
        if winner is None:
            raise
        return winner


async def product_facts(deps: Deps, ids: list[str]) -> dict[str, ProductFacts]:
    """The catalogue replica, completed by inventory for products it has not heard of yet."""
    found = await replicas.catalogue(deps.db, ids)
    missing = [product_id for product_id in dict.fromkeys(ids) if product_id not in found]
    if missing:
        found |= await deps.stock.products(missing)
    return found


# --- a customer's or staff member's change ----------------------------------------------------

type Step = Callable[[Order, Cause], object]


async def change(
    deps: Deps, caller: Caller, order_id: str, step: Step, *, owner_only: bool = False
) -> Order:
    """Load the order, check the caller may act on it, apply `step`, save, emit; retried on a
    lost race. Owner-only steps answer a Manager or Admin 403 (they can see the order)."""
    actor = caller.actor
    before: dict[str, Status] = {}

    async def body(session: AsyncClientSession) -> Order:
        order = visible(await deps.store.get(order_id, session), caller)
        if owner_only and order.user_id != caller.user_id and caller.role != "Admin":
            raise forbidden("Only the customer who placed the order (or an Admin) can do this.")
        before[order_id] = order.status
        steps = len(order.timeline)
        step(order, Cause(at=deps.clock(), actor=actor))
        if len(order.timeline) == steps:
            return order  # a replay (a return's Idempotency-Key): nothing to write
        await deps.store.save(
            order,
            session,
            events=[r.envelope(order_id, actor=actor) for r in order.pull_events()],
            outbox=deps.documents(ORDERS),
        )
        return order

    for attempt in range(1, COMMAND_ATTEMPTS + 1):
        try:
            order = await deps.write(body)
        except OrderError as exc:
            raise problem_of(exc) from exc
        except ConcurrentUpdate as exc:
            if attempt == COMMAND_ATTEMPTS:
                raise conflict(
                    "CONCURRENT_UPDATE", "The order kept changing meanwhile; try again."
                ) from exc
            continue
        record_step(order, before[order_id])
        return order
    raise AssertionError("unreachable")  # pragma: no cover


async def decide(deps: Deps, caller: Caller, order_id: str, accept: bool) -> Order:
    """The customer accepts the partial reservation (fewer units) or cancels the order."""
    policy = deps.policy
    return await change(
        deps, caller, order_id, lambda o, c: o.decide(accept, c, policy), owner_only=True
    )


async def cancel(deps: Deps, caller: Caller, order_id: str, reason: str | None) -> Order:
    """The customer before payment, an Admin any unfinished order: CANCELLED, stock released."""
    if caller.role == "Manager":
        raise forbidden(
            "Managers approve or reject orders; cancelling is the customer's or an Admin's."
        )
    return await change(
        deps,
        caller,
        order_id,
        lambda o, c: o.cancel(caller.user_id, caller.role, reason, c),
        owner_only=caller.role != "Admin",
    )


async def retry_payment(deps: Deps, caller: Caller, order_id: str, method_id: str | None) -> Order:
    """Request the payment again while PAYMENT_FAILED, with another stored method if given (the
    customer, or an Admin on the customer's behalf)."""
    if method_id is not None:
        owner = visible(await deps.store.get(order_id), caller).user_id
        # The owner's own token reads the freshest profile; an Admin's reads the replica.
        token = caller.authorization if owner == caller.user_id else None
        profile = await checks.customer_profile(deps.db, owner, deps.users, token)
        if profile is None or method_id not in profile.payment_method_ids:
            raise unprocessable(
                "UNKNOWN_PAYMENT_METHOD",
                f"No payment method {method_id} in the profile.",
                payment_method_id=method_id,
            )
    policy = deps.policy
    return await change(
        deps,
        caller,
        order_id,
        lambda o, c: o.retry_payment(method_id, c, policy),
        owner_only=True,
    )


async def approve(deps: Deps, caller: Caller, order_id: str, reason: str) -> Order:
    """A Manager or Admin lets a high-value or flagged order be charged."""
    policy = deps.policy
    return await change(
        deps, caller, order_id, lambda o, c: o.approve(caller.user_id, reason, c, policy)
    )


async def reject(deps: Deps, caller: Caller, order_id: str, reason: str) -> Order:
    """A Manager or Admin refuses the order: REJECTED, stock released."""
    return await change(deps, caller, order_id, lambda o, c: o.reject(caller.user_id, reason, c))


# --- returns (api.md "Fulfilment and returns") ------------------------------------------------


async def request_return(
    deps: Deps,
    caller: Caller,
    order_id: str,
    items: Sequence[tuple[str, int]],
    reason: str,
    key: str | None = None,
) -> tuple[Order, OrderReturn]:
    """The customer sends delivered units back (their own order only; staff cannot ask for
    a customer). Two requests racing are serialised by the order's version: the second is
    bounded by what the first claimed. An `Idempotency-Key` sent again answers its return."""
    return_id, policy, made = new_id(), deps.policy, []

    def step(order: Order, cause: Cause) -> None:
        made.append(order.request_return(return_id, items, reason, cause, policy, key=key))

    order = await change(deps, caller, order_id, step, owner_only=True)
    return order, made[-1]


type ReturnStep = Callable[[Order, Cause], OrderReturn]


async def change_return(
    deps: Deps, caller: Caller, return_id: str, step: ReturnStep
) -> tuple[Order, OrderReturn]:
    """A staff member's step on a return, found by its id: a `change` of its order."""
    order_id = await deps.store.order_of_return(return_id)
    if order_id is None:
        raise return_not_found(return_id)
    made: list[OrderReturn] = []
    order = await change(deps, caller, order_id, lambda o, c: made.append(step(o, c)))
    return order, made[-1]


async def approve_return(
    deps: Deps, caller: Caller, return_id: str, reason: str
) -> tuple[Order, OrderReturn]:
    """A Manager or Admin accepts a REQUESTED return (ReturnApproved)."""
    policy, by = deps.policy, caller.user_id
    return await change_return(
        deps, caller, return_id, lambda o, c: o.approve_return(return_id, by, reason, c, policy)
    )


async def reject_return(
    deps: Deps, caller: Caller, return_id: str, reason: str
) -> tuple[Order, OrderReturn]:
    """A Manager or Admin refuses a REQUESTED return (ReturnRejected): nothing is refunded."""
    by = caller.user_id
    return await change_return(
        deps, caller, return_id, lambda o, c: o.reject_return(return_id, by, reason, c)
    )


async def receive_return(deps: Deps, caller: Caller, return_id: str) -> tuple[Order, OrderReturn]:
    """An Admin took an APPROVED return's parcel in (ReturnReceived: refund and restock)."""
    policy, by = deps.policy, caller.user_id
    return await change_return(
        deps, caller, return_id, lambda o, c: o.receive_return(return_id, by, c, policy)
    )


async def order_returns(deps: Deps, caller: Caller, order_id: str) -> Order:
    """An order whose returns the caller may see (its customer's, any for staff)."""
    return await get_order(deps, caller, order_id)


async def list_returns(
    deps: Deps, *, status: ReturnStatus | None, limit: int, cursor: str | None
) -> tuple[list[ReturnRow], str | None]:
    """The returns queue (staff), newest first; one page and the cursor of the next."""
    after = time_position(cursor)
    rows = await deps.store.returns_page(status=status, after=after, limit=limit + 1)
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1].ret
    return rows, time_cursor(last.created_at, last.return_id)


# --- the deadline sweeper's step --------------------------------------------------------------


async def close_overdue(deps: Deps, order_id: str, now: datetime) -> bool:
    """Cancel the order if the wait it is in ended by `now` (its reason: that wait's timeout),
    its OrderCancelled in its outbox; for a CONFIRMED order, close its returns' waits that ended
    (ReturnRejected NOT_RECEIVED, or REFUND_FAILED REFUND_TIMEOUT). False when it moved on or
    is not due. One transaction."""

    async def body(session: AsyncClientSession) -> bool:
        order = await deps.store.load(order_id, session)
        kind, status = WAITS.get(order.status), order.status
        if kind is None or not order.deadline_passed(kind, Cause(at=now)):
            return False
        events = [r.envelope(order_id) for r in order.pull_events()]
        await deps.store.save(order, session, events=events, outbox=deps.documents(ORDERS))
        record_step(order, status)
        log.info("deadline.passed", order_id=order_id, kind=kind, status=order.status)
        return True

    try:
        return await deps.write(body)
    except ConcurrentUpdate:
        # An event moved the order meanwhile; the next sweep looks at it again.
        log.info("deadline.raced", order_id=order_id)
        return False


# --- saga steps (each a single-document step of the handler that runs it) ---------------------


def cause_of(envelope: Envelope[Any], at: datetime) -> Cause:
    """The step's cause: when, the event's actor, its source service, id and type."""
    return Cause(
        at=at,
        actor=envelope.actor,
        service=envelope.source,
        event_id=envelope.id,
        event_type=envelope.type,
    )


async def advance(ctx: Context, order_id: str, step: Step) -> Order | None:
    """Load the order, apply one step and, if it moved, save it with the events it raised and
    the handled event's id: one write (a single-document step, `bus.documents`)."""
    deps = ctx.deps
    order, duplicate = await deps.store.get_for_step(order_id, ctx.processed)
    if order is None:
        # Every order event names an order this service stored before emitting OrderPlaced.
        log.warning("saga.unknown_order", order_id=order_id, event_type=ctx.envelope.type)
        return None
    if duplicate:
        ctx.duplicate = True
        return order
    before, status = len(order.timeline), order.status
    step(order, cause_of(ctx.envelope, deps.clock()))
    if len(order.timeline) == before:
        log.debug(
            "saga.ignored", order_id=order_id, status=order.status, event_type=ctx.envelope.type
        )
        # Late or repeated in another envelope: nothing changes, but the id is noted so that
        # a redelivery stops at the read (and a test can tell that it was handled).
        await deps.store.note_processed(order_id, ctx.processed)
        return order
    cause = ctx.envelope
    events = [
        raised.envelope(cause.correlation_id, causation_id=cause.id, actor=cause.actor)
        for raised in order.pull_events()
    ]
    await deps.store.save(
        order, None, events=events, processed=ctx.processed, outbox=ctx.documents(ORDERS)
    )
    ctx.emitted.extend(events)
    record_step(order, status)
    return order


async def stock_reserved(ctx: Context, data: StockReserved) -> None:
    """Every line held: on to approval or payment (PaymentRequested / OrderApprovalRequired)."""
    policy = ctx.deps.policy
    await advance(
        ctx, data.order_id, lambda o, c: o.stock_reserved(data.lines, data.expires_at, c, policy)
    )


async def stock_partially_reserved(ctx: Context, data: StockPartiallyReserved) -> None:
    """Some lines held: the customer's preference decides (accept, cancel or ask)."""
    policy = ctx.deps.policy
    await advance(
        ctx,
        data.order_id,
        lambda o, c: o.stock_partially_reserved(
            data.reserved, data.missing, data.expires_at, c, policy
        ),
    )


async def stock_unavailable(ctx: Context, data: StockUnavailable) -> None:
    """Nothing held: REJECTED OUT_OF_STOCK with alternatives (OrderRejected)."""
    await advance(
        ctx, data.order_id, lambda o, c: o.stock_unavailable(data.alternatives, c, data.missing)
    )


async def stock_committed(ctx: Context, data: StockCommitted) -> None:
    """Stock sold: CONFIRMED (OrderConfirmed; payment captures)."""
    await advance(ctx, data.order_id, lambda o, c: o.stock_committed(c))


async def stock_commit_failed(ctx: Context, data: StockCommitFailed) -> None:
    """Reservation lost after payment: CANCELLED COMMIT_FAILED (OrderCancelled; payment voids)."""
    await advance(ctx, data.order_id, lambda o, c: o.stock_commit_failed(data.reason, c))


async def stock_released(ctx: Context, data: StockReleased) -> None:
    """Stock given back: a timeline step; an expired hold while the order waits cancels it."""
    await advance(ctx, data.order_id, lambda o, c: o.stock_released(data.reason, c))


async def payment_authorized(ctx: Context, data: PaymentAuthorized) -> None:
    """Money held: PAID (OrderPaid; inventory commits). Late ones after a cancel commit nothing."""
    policy = ctx.deps.policy
    await advance(
        ctx,
        data.order_id,
        lambda o, c: o.payment_authorized(data.payment_id, data.attempts, c, policy),
    )


async def payment_failed(ctx: Context, data: PaymentFailed) -> None:
    """Authorization failed: PAYMENT_FAILED, the reservation kept while the window is open."""
    policy = ctx.deps.policy
    await advance(
        ctx, data.order_id, lambda o, c: o.payment_failed(data.reason, data.attempts, c, policy)
    )


async def review_required(ctx: Context, data: PaymentReviewRequired) -> None:
    """Fraud rules flagged the payment: AWAITING_APPROVAL with fraudFlag."""
    policy = ctx.deps.policy
    await advance(ctx, data.order_id, lambda o, c: o.approval_needed("fraud", c, policy))


SETTLEMENT_STEPS: dict[type[Any], str] = {
    PaymentCaptured: "paymentCaptured",
    PaymentVoided: "paymentVoided",
}


async def payment_settled(ctx: Context, data: PaymentCaptured | PaymentVoided) -> None:
    """Captured or voided: a timeline step (the order's status does not change)."""
    step = SETTLEMENT_STEPS[type(data)]
    detail = {"paymentId": data.payment_id, "amountCents": data.amount_cents}
    await advance(ctx, data.order_id, lambda o, c: o.payment_settled(step, detail, c))


# --- after CONFIRMED: the shipment and the returns' answers -----------------------------------


async def shipment_created(ctx: Context, data: ShipmentCreated) -> None:
    """The parcel waits in the warehouse: fulfilment PENDING."""
    await advance(ctx, data.order_id, lambda o, c: o.shipment_created(data.shipment_id, c))


async def shipment_dispatched(ctx: Context, data: ShipmentDispatched) -> None:
    """The parcel left: fulfilment SHIPPED with carrier and tracking number."""
    await advance(
        ctx,
        data.order_id,
        lambda o, c: o.shipment_dispatched(
            data.shipment_id, data.carrier, data.tracking_number, data.shipped_at, c
        ),
    )


async def shipment_delivered(ctx: Context, data: ShipmentDelivered) -> None:
    """The parcel arrived: fulfilment DELIVERED; returns open."""
    await advance(
        ctx,
        data.order_id,
        lambda o, c: o.shipment_delivered(data.shipment_id, data.delivered_at, c),
    )


async def refund_settled(ctx: Context, data: PaymentRefunded | PaymentRefundFailed) -> None:
    """A return's refund: REFUNDED (`refundedCents` grows) or REFUND_FAILED with the reason. A
    refund that is no return's is a timeline step, as captures and voids are."""
    return_id = data.return_id
    if return_id is None:
        step = "paymentRefunded" if isinstance(data, PaymentRefunded) else "paymentRefundFailed"
        detail = {"paymentId": data.payment_id, "amountCents": data.amount_cents}
        await advance(ctx, data.order_id, lambda o, c: o.payment_settled(step, detail, c))
    elif isinstance(data, PaymentRefunded):
        amount, payment_id = data.amount_cents, data.payment_id
        await advance(
            ctx, data.order_id, lambda o, c: o.return_refunded(return_id, amount, payment_id, c)
        )
    else:
        reason = data.reason
        await advance(ctx, data.order_id, lambda o, c: o.return_refund_failed(return_id, reason, c))


async def stock_returned(ctx: Context, data: StockReturned) -> None:
    """The return's units are back on sale: noted on the return (`restockedAt`)."""
    await advance(ctx, data.order_id, lambda o, c: o.stock_returned(data.return_id, c))


# --- replicas ---------------------------------------------------------------------------------

type ReplicaWriter = Callable[[Db, Any, datetime, Session], Awaitable[None]]

REPLICA_WRITERS: dict[type[Any], ReplicaWriter] = {
    UserRegistered: replicas.user_registered,
    UserProfileUpdated: replicas.user_profile_updated,
    UserRoleChanged: replicas.user_role_changed,
    UserDeleted: replicas.user_deleted,
    ProductCreated: replicas.product_changed,
    ProductUpdated: replicas.product_changed,
    ProductDeleted: replicas.product_changed,
    PromotionGranted: replicas.promotion_granted,
}


async def replicate(deps: Deps, envelope: Envelope[Any], session: Session) -> None:
    """Write an event's facts into the local replica: only the field groups it is newer for."""
    write = REPLICA_WRITERS[type(envelope.data)]
    await write(deps.db, envelope.data, envelope.occurred_at, session)
