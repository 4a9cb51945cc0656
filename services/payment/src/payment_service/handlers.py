"""Event handlers of the payment service, and its handler table.

Write boundary. Each handler is a single-document step (`bus.documents`): no transaction and no
inbox row; one write of the payment per step carries its status, the decision with the events it
caused, the provider calls it made, the fields the request brings, the events themselves (the
payment's `outbox`) and the handled event's id (`processed`, which stops a redelivery at the
read). A write that finds the payment moved raises `Conflict` and the step runs again from a fresh
read. The provider calls happen before that write and outside any transaction.

A provider call cannot be rolled back. Each carries the idempotency key `<orderId>:<call
number>`, numbered over the order's stored calls, so a step run again, or a delivery
redelivered after a crash, calls again with the same keys and the processor answers each as it
did (it never charges twice): the rerun records the same calls and decides the same. What a
rerun cannot see in the payment is a hold its lost run obtained just as the order ended
(a cancellation that committed in between): `inflight` remembers, in process, the calls of runs
whose write did not land, and such a rerun voids that hold. A *different* event asking for an
attempt already decided (the order service re-sending it) emits nothing new and never calls the
provider.

`HANDLERS` is built by `handler_table` at the bottom: the consumer binds the service's queue to
the routing keys of its keys.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from bus import HandlerContext, HandlerTable, document_step
from bus.documents import already_processed, pending_rows
from contracts import Envelope, Event, new_id
from contracts.order import OrderCancelled, OrderConfirmed, OrderRejected, PaymentRequested
from contracts.payment import (
    PaymentAuthorized,
    PaymentCaptured,
    PaymentFailed,
    PaymentReviewRequired,
    PaymentVoided,
)
from contracts.registry import event_class
from kit.internal import internal_headers
from kit.transactions import Conflict
from payment_service import store
from payment_service.domain import (
    VELOCITY_WINDOW,
    Charge,
    FraudInput,
    PaymentStatus,
    backoff_delay,
    fraud_rules_apply,
    fraud_score,
    moves,
)
from payment_service.inflight import InFlight, Run
from payment_service.provider import (
    PaymentDeclined,
    PaymentProvider,
    SandboxProvider,
    TransientProviderError,
)
from payment_service.settings import PaymentSettings
from payment_service.store import PAYMENTS, Db, Doc
from payment_service.users import MethodInfo, UserDirectory

log = structlog.get_logger("payment.handlers")

DECLINED = "DECLINED"
RETRIES_EXHAUSTED = "PROVIDER_UNAVAILABLE"
METHOD_NOT_FOUND = "PAYMENT_METHOD_NOT_FOUND"
ORDER_CLOSED = "ORDER_CLOSED"
# How far back the fraud rules look at a customer's payments (velocity and usual amounts).
HISTORY_WINDOW = VELOCITY_WINDOW * 24 * 30


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PaymentEnv:
    """What the handlers call outside Mongo, and the retry and fraud settings."""

    provider: PaymentProvider
    users: UserDirectory
    max_attempts: int
    backoff_base: float
    backoff_cap: float
    fraud_threshold: float
    # Uncommitted runs of deliveries (see the module's docstring).
    inflight: InFlight = field(default_factory=InFlight)

    @classmethod
    def from_settings(
        cls,
        settings: PaymentSettings,
        *,
        provider: PaymentProvider | None = None,
        user_transport: httpx.AsyncBaseTransport | None = None,
    ) -> PaymentEnv:
        """The sandbox processor unless a provider is given (the only one this project has)."""
        return cls(
            provider=provider
            or SandboxProvider(
                latency_seconds=settings.provider_latency_seconds,
                state_path=Path(settings.sandbox_state_path)
                if settings.sandbox_state_path
                else None,
            ),
            users=UserDirectory(
                settings.user_url,
                timeout_seconds=settings.user_timeout_seconds,
                headers=internal_headers(settings),
                transport=user_transport,
            ),
            max_attempts=settings.max_attempts,
            backoff_base=settings.backoff_base_seconds,
            backoff_cap=settings.backoff_cap_seconds,
            fraud_threshold=settings.fraud_threshold,
        )


# --- outcomes: what one event decided, so that another event asking the same emits nothing ----


def _snapshot(events: Sequence[Event]) -> list[Doc]:
    return [{"type": e.TYPE, "data": e.model_dump(mode="json")} for e in events]


def _restore(snapshots: Sequence[Doc]) -> list[Event]:
    return [event_class(s["type"]).model_validate(s["data"]) for s in snapshots]


def _decision(envelope: Envelope[Any], events: Sequence[Event]) -> Doc:
    """What `envelope` decided, stored with the payment's move in the same write."""
    return {"cause": envelope.id, "events": _snapshot(events)}


async def _replayed(ctx: HandlerContext, payment: Doc, outcome: Doc | None) -> bool:
    """True when this key was decided already: re-emit if it was this very event, else nothing.

    (This very event finds its decision only where an older version stored it outside the
    transaction that then rolled back: its emission is owed. Since steps write their events in
    the same write as the decision, a redelivery stops at `processed` before it gets here.)
    """
    if outcome is None:
        return False
    if outcome["cause"] == ctx.envelope.id:
        await _save(ctx, payment, None, [], {}, events=_restore(outcome["events"]))
    else:
        log.info("payment.duplicate_request", cause=outcome["cause"])
    return True


def _duplicate(ctx: HandlerContext, payment: Doc | None) -> bool:
    """True (and noted on `ctx`) when the payment's steps handled this very delivery already."""
    ctx.duplicate = payment is not None and already_processed(payment, ctx.processed)
    return ctx.duplicate


async def _save(
    ctx: HandlerContext,
    payment: Doc | None,
    new: tuple[str, PaymentRequested] | None,
    targets: Sequence[PaymentStatus],
    decisions: dict[str, Doc],
    *,
    events: Sequence[Event] = (),
    **fields: Any,
) -> None:
    """The step's one write: the payment moved through `targets`, with the step's decisions,
    `fields`, its `events` and the handled event's id (a single-document step); on first sight
    (`payment` None) inserted as `new` (its id, and the request). The events go to the relay
    once written.

    A payment that moved since it was read (another step, or a concurrent copy of this very
    delivery) raises `Conflict`: the step runs again from a fresh read.
    """
    now = utcnow()
    rows = pending_rows([ctx.envelope.caused(event) for event in events], now)
    if payment is None:
        assert new is not None, "a payment is created for a request only"
        payment_id, request = new
        status = moves(PaymentStatus.PENDING, *targets)
        doc = store.new_payment(payment_id, request.order_id, request.user_id, now, **fields)
        doc.update(status=status.value, outcomes=decisions)
        await store.insert(ctx.db, doc, rows, ctx.processed)
    else:
        payment_id = payment["_id"]
        status = moves(PaymentStatus(payment["status"]), *targets)
        changes = {name: value for name, value in fields.items() if payment.get(name) != value}
        changes.update({f"outcomes.{key}": value for key, value in decisions.items()})
        if status.value != payment["status"]:
            changes["status"] = status.value
        if not await store.update(ctx.db, payment, rows, ctx.processed, **changes, updated_at=now):
            raise Conflict(f"payment {payment_id} moved while {ctx.handler} decided")
    ctx.documents(PAYMENTS).written(payment_id, rows, None)


# --- authorize ------------------------------------------------------------------------------


def _flagged_before(payment: Doc | None, envelope: Envelope[PaymentRequested]) -> set[Charge]:
    """The cards and amounts the fraud rules flagged on this payment for earlier requests: all
    a Manager can have reviewed (a re-run of the flagging request itself reviewed nothing)."""
    return {
        Charge(flag["payment_method_id"], int(flag["amount_cents"]))
        for flag in (payment or {}).get("flagged_charges", [])
        if flag["cause"] != envelope.id
    }


def _scored(envelope: Envelope[PaymentRequested], payment: Doc | None) -> bool:
    request = envelope.data
    charge = Charge(request.payment_method_id, request.amount_cents)
    return fraud_rules_apply(request.review_passed, _flagged_before(payment, envelope), charge)


async def _settled(
    ctx: HandlerContext, payment: Doc, key: str, review_key: str, *, holding: bool
) -> bool:
    """True when this request has nothing (left) to do: decided already (re-emitted if by this
    very event), an earlier request already authorized, or the order ended (unless a rolled-back
    run of this delivery holds an authorization: that hold is voided, not left in place)."""
    outcomes: Doc = payment.get("outcomes", {})
    if await _replayed(ctx, payment, outcomes.get(key)):
        return True
    if _scored(ctx.envelope, payment) and await _replayed(ctx, payment, outcomes.get(review_key)):
        return True
    status = PaymentStatus(payment["status"])
    if status not in (PaymentStatus.PENDING, PaymentStatus.FAILED) or (
        payment.get("closed") and not holding
    ):
        # An earlier request already authorized, or the order ended: never charge again.
        log.info("payment.request_ignored", status=status, closed=payment.get("closed"))
        return True
    return False


def _via_pending(payment: Doc | None) -> list[PaymentStatus]:
    """A failed payment goes back to pending for the customer's next request."""
    failed = payment is not None and payment["status"] == PaymentStatus.FAILED
    return [PaymentStatus.PENDING] if failed else []


async def _assess(
    envelope: Envelope[PaymentRequested], payment: Doc | None, env: PaymentEnv, db: Db
) -> tuple[MethodInfo | None, Doc, PaymentReviewRequired | None]:
    """The card (None: not this customer's), the fields this request sets on the payment (its
    amounts and card, and the fraud verdict unless a Manager cleared this very card and amount)
    and the review the verdict asks for, if it does."""
    request = envelope.data
    method = await env.users.payment_method(request.user_id, request.payment_method_id)
    fields: Doc = {
        "amount_cents": request.amount_cents,
        "currency": request.currency,
        "payment_method_id": request.payment_method_id,
    }
    if method is None or not _scored(envelope, payment):
        return method, fields, None
    now = utcnow()
    past = await store.user_history(
        db, request.user_id, except_order=request.order_id, since=now - HISTORY_WINDOW
    )
    verdict = fraud_score(
        FraudInput(
            amount_cents=request.amount_cents,
            token=method.token,
            now=now,
            history=store.as_utc(past),
            account_created_at=method.account_created_at,
            account_region=method.account_region,
            order_region=envelope.actor.region,
        )
    )
    flagged = verdict.flagged(env.fraud_threshold)
    fields["fraud"] = {"score": verdict.score, "reasons": list(verdict.reasons), "flagged": flagged}
    if not flagged:
        return method, fields, None
    # What a Manager's review of this verdict can clear, and nothing else.
    fields["flagged_charges"] = [
        *(payment or {}).get("flagged_charges", []),
        {
            "payment_method_id": request.payment_method_id,
            "amount_cents": request.amount_cents,
            "cause": envelope.id,
        },
    ]
    review = PaymentReviewRequired(
        order_id=request.order_id,
        user_id=request.user_id,
        fraud_score=verdict.score,
        reasons=verdict.reasons,
    )
    return method, fields, review


async def _call_provider(
    env: PaymentEnv, request: PaymentRequested, run: Run, history: Sequence[Doc]
) -> None:
    """Call the processor until this request is authorized, declined or out of calls; each
    answer is appended to `run.calls` as it comes (calls of earlier runs count: `history`)."""
    mine = [a for a in history if a["request"] == request.attempt]
    if any(a["outcome"] in ("authorized", "declined") for a in mine):
        return
    # Calls of this request that a crash or a rollback interrupted count against its budget.
    budget = env.max_attempts - len(mine)
    if budget <= 0:
        return
    number = max((int(a["number"]) for a in history), default=0)

    def wait(state: RetryCallState) -> float:
        return backoff_delay(
            state.attempt_number, env.backoff_base, env.backoff_cap, random.random()
        )

    async def call() -> None:
        nonlocal number
        number += 1
        key = f"{request.order_id}:{number}"
        record: Doc = {
            "number": number,
            "request": request.attempt,
            "payment_method_id": request.payment_method_id,
            "idempotency_key": key,
            "at": utcnow(),
        }
        try:
            auth = await env.provider.authorize(
                key=key,
                payment_ref=request.order_id,
                token=run.token,
                amount_cents=request.amount_cents,
                currency=request.currency,
            )
        except PaymentDeclined as exc:
            run.calls.append({**record, "outcome": "declined", "error": str(exc)})
            raise
        except TransientProviderError as exc:
            run.calls.append({**record, "outcome": "transient", "error": str(exc)})
            raise
        run.calls.append(
            {
                **record,
                "outcome": "authorized",
                "error": None,
                "authorization_id": auth.authorization_id,
            }
        )

    with contextlib.suppress(PaymentDeclined, TransientProviderError):
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(budget),
            wait=wait,
            retry=retry_if_exception_type(TransientProviderError),
            reraise=True,
        ):
            with attempt:
                await call()


@document_step
async def authorize_payment(
    envelope: Envelope[PaymentRequested], ctx: HandlerContext, *, env: PaymentEnv
) -> None:
    """Fraud rules (unless a Manager cleared this very card and amount), then authorize with
    retries; one write of the payment with whatever was decided."""
    request = envelope.data
    key, review_key = str(request.attempt), f"{request.attempt}/review"
    # A rolled-back run of this very delivery (what it settled, the calls it made); forgotten
    # once a run commits, whatever it decided.
    run = env.inflight.get(envelope.id)
    ctx.after_commit(partial(env.inflight.forget, envelope.id))
    payment = await store.payment_for(ctx.db, request.order_id)
    if _duplicate(ctx, payment):
        return
    holding = run is not None and run.authorization_id is not None
    if payment is not None and await _settled(ctx, payment, key, review_key, holding=holding):
        return
    stored = await store.attempts(ctx.db, payment) if payment is not None else []
    payment_id = payment["_id"] if payment is not None else new_id()
    new = (payment_id, request)
    via = _via_pending(payment)
    if run is None:
        method, assessed, review = await _assess(envelope, payment, env, ctx.db)
        if method is None:
            failed = PaymentFailed(
                order_id=request.order_id,
                user_id=request.user_id,
                payment_id=payment_id,
                reason=METHOD_NOT_FOUND,
                attempts=max(1, len(stored)),
                retryable=True,
            )
            await _fail(ctx, payment, new, key, failed, **assessed, attempts=stored)
            return
        if review is not None:
            decisions = {review_key: _decision(envelope, [review])}
            await _save(
                ctx, payment, new, via, decisions, events=[review], **assessed, attempts=stored
            )
            return
        run = env.inflight.start(envelope.id, assessed, method.token)

    await _call_provider(env, request, run, store.numbered([*stored, *run.calls]))
    calls = store.numbered([*stored, *run.calls])
    attempts = max(1, max((int(c["number"]) for c in calls), default=0))
    authorization_id = run.authorization_id
    if authorization_id is None:
        mine = [c for c in calls if c["request"] == request.attempt]
        declined = any(c["outcome"] == "declined" for c in mine)
        failed = PaymentFailed(
            order_id=request.order_id,
            user_id=request.user_id,
            payment_id=payment_id,
            reason=DECLINED if declined else RETRIES_EXHAUSTED,
            attempts=attempts,
            # A decline is final for this card; an unavailable processor may answer later.
            retryable=not declined,
        )
        await _fail(ctx, payment, new, key, failed, **run.fields, attempts=calls)
        return

    authorized = PaymentAuthorized(
        order_id=request.order_id,
        user_id=request.user_id,
        payment_id=payment_id,
        amount_cents=request.amount_cents,
        currency=request.currency,
        fraud_flag=not _scored(envelope, payment),
        attempts=attempts,
    )
    events: list[Event] = [authorized]
    targets = [*via, PaymentStatus.AUTHORIZED]
    fields: Doc = {**run.fields, "attempts": calls, "authorization_id": authorization_id}
    if payment is not None and payment.get("closed"):
        # The order ended while we were authorizing: release the hold at once.
        held = {
            **fields,
            "_id": payment_id,
            "order_id": request.order_id,
            "user_id": request.user_id,
        }
        events.append(await _void(env, held, ORDER_CLOSED))
        targets.append(PaymentStatus.VOIDED)
        fields["void_reason"] = ORDER_CLOSED
    decisions = {key: _decision(envelope, events)}
    await _save(ctx, payment, new, targets, decisions, events=events, **fields)


async def _fail(
    ctx: HandlerContext,
    payment: Doc | None,
    new: tuple[str, PaymentRequested],
    key: str,
    failed: PaymentFailed,
    **fields: Any,
) -> None:
    targets = [*_via_pending(payment), PaymentStatus.FAILED]
    decisions = {key: _decision(ctx.envelope, [failed])}
    await _save(
        ctx, payment, new, targets, decisions, events=[failed], **fields, failure=failed.reason
    )


# --- capture and void -------------------------------------------------------------------------


@document_step
async def capture_payment(
    envelope: Envelope[OrderConfirmed], ctx: HandlerContext, *, env: PaymentEnv
) -> None:
    """Capture the authorized amount (at most the confirmed total) once the order is final."""
    order = envelope.data
    payment = await store.payment_for(ctx.db, order.order_id)
    if payment is None:
        log.warning("payment.capture_without_payment", order_id=order.order_id)
        return
    if _duplicate(ctx, payment):
        return
    if await _replayed(ctx, payment, payment.get("outcomes", {}).get("capture")):
        return
    if payment["status"] != PaymentStatus.AUTHORIZED:
        # Voided, failed or never authorized: nothing may be captured (architecture.md).
        log.warning("payment.capture_refused", order_id=order.order_id, status=payment["status"])
        return
    amount = min(order.total_cents, int(payment["amount_cents"]))
    await env.provider.capture(
        key=f"{order.order_id}:capture",
        authorization_id=payment["authorization_id"],
        amount_cents=amount,
    )
    event = PaymentCaptured(
        order_id=order.order_id,
        user_id=payment["user_id"],
        payment_id=payment["_id"],
        amount_cents=amount,
        currency=payment["currency"],
    )
    decisions = {"capture": _decision(envelope, [event])}
    await _save(
        ctx,
        payment,
        None,
        [PaymentStatus.CAPTURED],
        decisions,
        events=[event],
        captured_cents=amount,
    )


@document_step
async def void_payment(
    envelope: Envelope[OrderCancelled] | Envelope[OrderRejected],
    ctx: HandlerContext,
    *,
    env: PaymentEnv,
) -> None:
    """Release an authorization when the order ends unpaid; remember the end for late ones."""
    order = envelope.data
    payment = await store.payment_for(ctx.db, order.order_id)
    if _duplicate(ctx, payment):
        return
    if payment is None:
        # Ended before payment saw it: the stub makes a late request change nothing.
        stub = store.new_payment(
            new_id(),
            order.order_id,
            order.user_id,
            utcnow(),
            closed=True,
            closed_reason=order.reason,
        )
        await store.insert(ctx.db, stub, [], ctx.processed)
        return
    if await _replayed(ctx, payment, payment.get("outcomes", {}).get("void")):
        return
    closing: Doc = {} if payment.get("closed") else {"closed": True, "closed_reason": order.reason}
    if payment["status"] != PaymentStatus.AUTHORIZED:
        # Nothing held; a later authorization sees `closed` and voids itself.
        if closing:
            await _save(ctx, payment, None, [], {}, **closing)
        return
    event = await _void(env, payment, order.reason)
    decisions = {"void": _decision(envelope, [event])}
    await _save(
        ctx,
        payment,
        None,
        [PaymentStatus.VOIDED],
        decisions,
        events=[event],
        **closing,
        void_reason=order.reason,
    )


async def _void(env: PaymentEnv, held: Doc, reason: str) -> PaymentVoided:
    """Void `held` (a payment's id, order, user, amount, currency and authorization) with the
    processor (idempotent key): the event saying so."""
    await env.provider.void(
        key=f"{held['order_id']}:void", authorization_id=held["authorization_id"]
    )
    return PaymentVoided(
        order_id=held["order_id"],
        user_id=held["user_id"],
        payment_id=held["_id"],
        amount_cents=int(held["amount_cents"]),
        currency=held["currency"],
        reason=reason,
    )


def handler_table(env: PaymentEnv) -> HandlerTable:
    """The service's subscriptions, bound to its provider, user directory and settings."""
    void = partial(void_payment, env=env)
    return {
        PaymentRequested: [partial(authorize_payment, env=env)],
        OrderConfirmed: [partial(capture_payment, env=env)],
        OrderCancelled: [void],
        OrderRejected: [void],
    }


# The table with default settings, for whoever needs only its subscriptions (the service itself
# builds its own in `bootstrap` from its settings).
HANDLERS: HandlerTable = handler_table(PaymentEnv.from_settings(PaymentSettings.model_construct()))
