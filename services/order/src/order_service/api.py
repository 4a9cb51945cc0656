"""HTTP routes of the order service, under `/api/v1/orders` and `/api/v1/returns` (reached
through the gateway).

Each route parses, runs one command (`commands.py`) and answers. Reads answer from the order's
document; every change is one transaction of its command (see there). Roles are checked here as
well as at the gateway: a Customer sees and changes only their own orders (another customer's
order is a 404, never a 403), Managers and Admins see all.

Returns (api.md "Fulfilment and returns") live in their order: a customer asks for one on their
own order (a Manager or Admin is not the customer and is answered 403: they act on returns in
the queue, `/api/v1/returns`); Managers and Admins approve or reject; only an Admin receives.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from kit.auth import CurrentUser, Principal, require_roles
from kit.conditional import none_match, not_modified, weak_etag
from kit.errors import PROBLEM_RESPONSES
from kit.models import DEFAULT_LIMIT, Cursor, Limit, Page
from kit.request_context import actor_from_request
from order_service import commands
from order_service.commands import Caller, NewOrder
from order_service.deps import DepsDep
from order_service.domain import STAFF, TERMINAL, ReturnStatus, Status
from order_service.schemas import (
    CancelBody,
    DecisionBody,
    OrderOut,
    OrderSummary,
    PlaceBody,
    Placed,
    PrecheckBody,
    PrecheckOut,
    ReasonBody,
    RetryBody,
    ReturnBody,
    ReturnOut,
    ReturnsOut,
    Timeline,
    TimelineItem,
    lines_of,
    precheck_view,
    return_view,
    returns_of,
    summary_of,
    view,
)

router = APIRouter(prefix="/api/v1/orders", tags=["orders"])

IDEMPOTENCY_KEY_MAX = 128

CustomerUser = Annotated[Principal, require_roles("Customer")]
StaffUser = Annotated[Principal, require_roles(*STAFF)]
AdminUser = Annotated[Principal, require_roles("Admin")]


def caller(request: Request, user: Principal) -> Caller:
    """The command's caller: the principal, the audit actor and the bearer token."""
    return Caller(user, actor_from_request(request, user), request.headers.get("authorization"))


# --- reads ------------------------------------------------------------------------------------

READ_RESPONSES: dict[int | str, dict[str, Any]] = {k: PROBLEM_RESPONSES[k] for k in (401, 404)}
CHANGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    k: PROBLEM_RESPONSES[k] for k in (401, 403, 404, 409, 422)
}
STAFF_LIST_RESPONSES: dict[int | str, dict[str, Any]] = {
    k: PROBLEM_RESPONSES[k] for k in (401, 403, 422)
}


@router.get("", response_model=Page[OrderSummary], responses=READ_RESPONSES)
async def list_orders(
    request: Request,
    deps: DepsDep,
    user: CurrentUser,
    status: Annotated[Status | None, Query()] = None,
    user_id: Annotated[str | None, Query(alias="userId", max_length=100)] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[OrderSummary]:
    """A Customer's own orders; all orders for Managers and Admins (filter by status, userId)."""
    orders, next_cursor = await commands.list_orders(
        deps, caller(request, user), status=status, user_id=user_id, limit=limit, cursor=cursor
    )
    items = [OrderSummary(**summary_of(o)) for o in orders]
    return Page[OrderSummary](items=items, next_cursor=next_cursor)


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
    order = await commands.get_order(deps, caller(request, user), order_id)
    headers = {"ETag": weak_etag(order.version), "Cache-Control": "private, no-cache"}
    if order.status not in TERMINAL:
        headers["Retry-After"] = str(POLL_AGAIN_SECONDS)
    if none_match(request.headers.get("if-none-match"), headers["ETag"]):
        return not_modified(headers)
    response.headers.update(headers)
    return view(order)


@router.get("/{order_id}/timeline", response_model=Timeline, responses=READ_RESPONSES)
async def get_timeline(
    order_id: str, request: Request, deps: DepsDep, user: CurrentUser
) -> Timeline:
    """Every saga step of the order: when, which service, which event."""
    entries = await commands.timeline(deps, caller(request, user), order_id)
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
    outcome = await commands.precheck(deps, caller(request, user), lines_of(body.items))
    return precheck_view(outcome)


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
    new = NewOrder(lines_of(body.items), body.address_id, body.payment_method_id, body.promo_code)
    first = await commands.place_order(deps, caller(request, user), new, idempotency_key)
    response.headers["Location"] = f"/api/v1/orders/{first.order_id}"
    return Placed.model_validate(first.response)


# --- changes ----------------------------------------------------------------------------------


@router.post("/{order_id}/decision", response_model=OrderOut, responses=CHANGE_RESPONSES)
async def decide(
    order_id: str, body: DecisionBody, request: Request, deps: DepsDep, user: CurrentUser
) -> OrderOut:
    """Accept the partial reservation (go on with fewer units) or cancel the order."""
    return view(await commands.decide(deps, caller(request, user), order_id, body.accept))


@router.post("/{order_id}/cancel", response_model=OrderOut, responses=CHANGE_RESPONSES)
async def cancel(
    order_id: str,
    request: Request,
    deps: DepsDep,
    user: CurrentUser,
    body: CancelBody | None = None,
) -> OrderOut:
    """The customer before payment, an Admin any unfinished order: CANCELLED, stock released."""
    reason = body.reason if body else None
    return view(await commands.cancel(deps, caller(request, user), order_id, reason))


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
    return view(await commands.retry_payment(deps, caller(request, user), order_id, method))


@router.post("/{order_id}/approve", response_model=OrderOut, responses=CHANGE_RESPONSES)
async def approve(
    order_id: str, body: ReasonBody, request: Request, deps: DepsDep, user: StaffUser
) -> OrderOut:
    """A Manager or Admin lets a high-value or flagged order be charged."""
    return view(await commands.approve(deps, caller(request, user), order_id, body.reason))


@router.post("/{order_id}/reject", response_model=OrderOut, responses=CHANGE_RESPONSES)
async def reject(
    order_id: str, body: ReasonBody, request: Request, deps: DepsDep, user: StaffUser
) -> OrderOut:
    """A Manager or Admin refuses the order: REJECTED, stock released."""
    return view(await commands.reject(deps, caller(request, user), order_id, body.reason))


# --- returns of an order -----------------------------------------------------------------------


@router.post(
    "/{order_id}/returns", status_code=201, response_model=ReturnOut, responses=CHANGE_RESPONSES
)
async def request_return(
    order_id: str,
    body: ReturnBody,
    request: Request,
    deps: DepsDep,
    user: CustomerUser,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", max_length=IDEMPOTENCY_KEY_MAX)
    ] = None,
) -> ReturnOut:
    """Send delivered units back (own order, within the return window): REQUESTED, with the
    refund fixed now. Optional `Idempotency-Key`: sent again, it answers the same return."""
    order, ret = await commands.request_return(
        deps, caller(request, user), order_id, lines_of(body.items), body.reason, idempotency_key
    )
    return return_view(order.order_id, order.user_id, order.currency, ret)


@router.get("/{order_id}/returns", response_model=ReturnsOut, responses=READ_RESPONSES)
async def list_order_returns(
    order_id: str, request: Request, deps: DepsDep, user: CurrentUser
) -> ReturnsOut:
    """The order's returns, oldest first (its customer; Managers and Admins)."""
    order = await commands.order_returns(deps, caller(request, user), order_id)
    return ReturnsOut(items=returns_of(order))


# --- the returns queue (Managers, Admins) -----------------------------------------------------

returns_router = APIRouter(prefix="/api/v1/returns", tags=["returns"])


@returns_router.get("", response_model=Page[ReturnOut], responses=STAFF_LIST_RESPONSES)
async def list_returns(
    deps: DepsDep,
    user: StaffUser,
    status: Annotated[ReturnStatus | None, Query()] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[ReturnOut]:
    """Every order's returns, newest first; filter by status (REFUND_FAILED: for a person)."""
    rows, next_cursor = await commands.list_returns(deps, status=status, limit=limit, cursor=cursor)
    items = [return_view(r.order_id, r.user_id, r.currency, r.ret) for r in rows]
    return Page[ReturnOut](items=items, next_cursor=next_cursor)


@returns_router.post("/{return_id}/approve", response_model=ReturnOut, responses=CHANGE_RESPONSES)
async def approve_return(
    return_id: str, body: ReasonBody, request: Request, deps: DepsDep, user: StaffUser
) -> ReturnOut:
    """A Manager or Admin accepts a REQUESTED return: APPROVED, the parcel awaited."""
    order, ret = await commands.approve_return(deps, caller(request, user), return_id, body.reason)
    return return_view(order.order_id, order.user_id, order.currency, ret)


@returns_router.post("/{return_id}/reject", response_model=ReturnOut, responses=CHANGE_RESPONSES)
async def reject_return(
    return_id: str, body: ReasonBody, request: Request, deps: DepsDep, user: StaffUser
) -> ReturnOut:
    """A Manager or Admin refuses a REQUESTED return: REJECTED, nothing refunded."""
    order, ret = await commands.reject_return(deps, caller(request, user), return_id, body.reason)
    return return_view(order.order_id, order.user_id, order.currency, ret)


@returns_router.post("/{return_id}/receive", response_model=ReturnOut, responses=CHANGE_RESPONSES)
async def receive_return(
    return_id: str, request: Request, deps: DepsDep, user: AdminUser
) -> ReturnOut:
    """An Admin took an APPROVED return's parcel in: RECEIVED; payment refunds, inventory
    restocks, and the return becomes REFUNDED."""
    order, ret = await commands.receive_return(deps, caller(request, user), return_id)
    return return_view(order.order_id, order.user_id, order.currency, ret)


ROUTERS = [router, returns_router]
