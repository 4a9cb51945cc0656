"""Event handlers of the payment service, and its handler table.

Transaction boundary. The consumer runs each handler inside a Mongo transaction that may be run
again from the start (write conflicts, and the embedded server treats any two overlapping write
transactions as conflicting). A provider call cannot be rolled back, and holding a transaction
open across retries with backoff (up to 5 s) would make it collide with every other writer and
then replay the whole wait. So the payment's own records are written *outside* the transaction
(session None), each write idempotent: the attempt is recorded with its outcome right after each
provider call, whose idempotency key is `<orderId>:<attempt number>` (the provider answers the
same key with the same result and never charges twice); the decision is stored on the payment with
the events it caused and the id of the PaymentRequested that caused them. Only the emission goes
into the transaction, through the outbox. If that transaction is re-run, or the delivery is
redelivered before it committed, the handler finds the decision already made by this same event
and emits it again (the earlier emission was rolled back) without calling the provider; a
*different* event asking for an attempt already decided (the order service re-sending it) emits
nothing new.

`HANDLERS` is built by `handler_table` at the bottom: the consumer binds the service's queue to
the routing keys of its keys.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from bus import HandlerContext, HandlerTable
from contracts import Envelope, Event
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
from payment_service import store
from payment_service.domain import (
    VELOCITY_WINDOW,
    Charge,
    FraudInput,
    PaymentStatus,
    backoff_delay,
    fraud_rules_apply,
    fraud_score,
)
from payment_service.provider import (
    PaymentDeclined,
    PaymentProvider,
    SandboxProvider,
    TransientProviderError,
)
from payment_service.settings import PaymentSettings
from payment_service.store import Db, Doc
from payment_service.users import UserDirectory

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


# --- outcomes: what one event decided, kept to re-emit after a rolled-back transaction ------


def _snapshot(events: Sequence[Event]) -> list[Doc]:
    return [{"type": e.TYPE, "data": e.model_dump(mode="json")} for e in events]


def _restore(snapshots: Sequence[Doc]) -> list[Event]:
    return [event_class(s["type"]).model_validate(s["data"]) for s in snapshots]


def _decision(key: str, envelope: Envelope[Any], events: Sequence[Event]) -> Doc:
    """The `$set` fields storing what `envelope` decided under `key` (before emitting it)."""
    return {f"outcomes.{key}": {"cause": envelope.id, "events": _snapshot(events)}}


async def _decide(
    db: Db, payment: Doc, key: str, envelope: Envelope[Any], events: Sequence[Event]
) -> Doc:
    """Store what `envelope` decided under `key` (before emitting it)."""
    return await store.set_fields(db, payment["_id"], utcnow(), **_decision(key, envelope, events))


async def _emit(ctx: HandlerContext, events: Sequence[Event]) -> None:
    for event in events:
        await ctx.emit(event)


async def _replayed(ctx: HandlerContext, outcome: Doc | None) -> bool:
    """True when this key was decided already: re-emit if it was this very event, else nothing."""
    if outcome is None:
        return False
    if outcome["cause"] == ctx.envelope.id:
        await _emit(ctx, _restore(outcome["events"]))
    else:
        log.info("payment.duplicate_request", cause=outcome["cause"])
    return True


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


async def _settled(ctx: HandlerContext, payment: Doc, key: str, review_key: str) -> bool:
    """True when this request has nothing (left) to do: decided already (re-emitted if by this
    very event), the order ended, or an earlier request already authorized."""
    outcomes: Doc = payment.get("outcomes", {})
    if await _replayed(ctx, outcomes.get(key)):
        return True
    if _scored(ctx.envelope, payment) and await _replayed(ctx, outcomes.get(review_key)):
        return True
    status = PaymentStatus(payment["status"])
    if payment.get("closed") or status not in (PaymentStatus.PENDING, PaymentStatus.FAILED):
        # The order ended, or an earlier request already authorized: never charge again.
        log.info("payment.request_ignored", status=status, closed=payment.get("closed"))
        return True
    return False


async def authorize_payment(
    envelope: Envelope[PaymentRequested], ctx: HandlerContext, *, env: PaymentEnv
) -> None:
    """Fraud rules (unless a Manager cleared this very card and amount), then authorize with
    retries."""
    request = envelope.data
    db = ctx.db
    key, review_key = str(request.attempt), f"{request.attempt}/review"
    payment = await store.payment_for(db, request.order_id)
    if payment is not None and await _settled(ctx, payment, key, review_key):
        return
    history = await store.attempts(db, payment["_id"]) if payment is not None else []
    method = await env.users.payment_method(request.user_id, request.payment_method_id)
    # What this request sets on the payment, fraud verdict included: written at once below.
    fields: Doc = {
        "amount_cents": request.amount_cents,
        "currency": request.currency,
        "payment_method_id": request.payment_method_id,
    }
    review: PaymentReviewRequired | None = None
    # Not scored: a Manager cleared this very card and amount after the rules flagged them.
    scored = _scored(envelope, payment)
    if method is not None and scored:
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
        fields["fraud"] = {
            "score": verdict.score,
            "reasons": list(verdict.reasons),
            "flagged": flagged,
        }
        if flagged:
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
    if payment is None:
        # First sight: the payment is created with this request's fields (one write). Someone
        # else may have created it meanwhile (a cancellation's stub): look at it as above.
        payment = await store.ensure_payment(
            db, request.order_id, request.user_id, utcnow(), **fields
        )
        if await _settled(ctx, payment, key, review_key):
            return
    changed = {name: value for name, value in fields.items() if payment.get(name) != value}
    if PaymentStatus(payment["status"]) is PaymentStatus.FAILED:
        moved = await store.move(db, payment["_id"], PaymentStatus.PENDING, utcnow(), **changed)
        if moved is None and changed:
            moved = await store.set_fields(db, payment["_id"], utcnow(), **changed)
        payment = moved or payment
    elif changed:  # nothing is written when the stored payment already says it all
        payment = await store.set_fields(db, payment["_id"], utcnow(), **changed)
    if method is None:
        failed = PaymentFailed(
            order_id=request.order_id,
            user_id=request.user_id,
            payment_id=payment["_id"],
            reason=METHOD_NOT_FOUND,
            attempts=max(1, len(history)),
            retryable=True,
        )
        await _finish_failed(ctx, payment, key, failed)
        return
    if review is not None:
        await _decide(db, payment, review_key, envelope, [review])
        await _emit(ctx, [review])
        return

    mine = [a for a in history if a["request"] == request.attempt]
    number = history[-1]["number"] if history else 0
    authorization_id: str | None = next(
        (a["authorization_id"] for a in mine if a["outcome"] == "authorized"), None
    )
    declined = any(a["outcome"] == "declined" for a in mine)
    if authorization_id is None and not declined:
        # Calls of this request that a crash interrupted count against its budget.
        budget = env.max_attempts - len(mine)

        def wait(state: RetryCallState) -> float:
            return backoff_delay(
                state.attempt_number, env.backoff_base, env.backoff_cap, random.random()
            )

        async def call() -> str:
            nonlocal number
            number += 1
            attempt_key = f"{request.order_id}:{number}"
            record: Doc = {
                "request": request.attempt,
                "payment_method_id": request.payment_method_id,
                "idempotency_key": attempt_key,
                "at": utcnow(),
            }
            try:
                auth = await env.provider.authorize(
                    key=attempt_key,
                    payment_ref=request.order_id,
                    token=method.token,
                    amount_cents=request.amount_cents,
                    currency=request.currency,
                )
            except PaymentDeclined as exc:
                await store.record_attempt(
                    db, payment["_id"], number, **record, outcome="declined", error=str(exc)
                )
                raise
            except TransientProviderError as exc:
                await store.record_attempt(
                    db, payment["_id"], number, **record, outcome="transient", error=str(exc)
                )
                raise
            await store.record_attempt(
                db,
                payment["_id"],
                number,
                **record,
                outcome="authorized",
                error=None,
                authorization_id=auth.authorization_id,
            )
            return auth.authorization_id

        try:
            if budget > 0:
                async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(budget),
                    wait=wait,
                    retry=retry_if_exception_type(TransientProviderError),
                    reraise=True,
                ):
                    with attempt:
                        authorization_id = await call()
        except PaymentDeclined:
            declined = True
        except TransientProviderError:
            pass

    attempts = max(1, number)
    if authorization_id is None:
        failed = PaymentFailed(
            order_id=request.order_id,
            user_id=request.user_id,
            payment_id=payment["_id"],
            reason=DECLINED if declined else RETRIES_EXHAUSTED,
            attempts=attempts,
            # A decline is final for this card; an unavailable processor may answer later.
            retryable=not declined,
        )
        await _finish_failed(ctx, payment, key, failed)
        return

    authorized_event = PaymentAuthorized(
        order_id=request.order_id,
        user_id=request.user_id,
        payment_id=payment["_id"],
        amount_cents=request.amount_cents,
        currency=request.currency,
        fraud_flag=not scored,
        attempts=attempts,
    )
    # The common case in one write: authorized, with the decision, while the order is open.
    authorized = await store.move(
        db,
        payment["_id"],
        PaymentStatus.AUTHORIZED,
        utcnow(),
        unless_closed=True,
        authorization_id=authorization_id,
        **_decision(key, envelope, [authorized_event]),
    )
    if authorized is not None:
        await _emit(ctx, [authorized_event])
        return
    authorized = await store.move(
        db,
        payment["_id"],
        PaymentStatus.AUTHORIZED,
        utcnow(),
        authorization_id=authorization_id,
    )
    if authorized is None:  # moved meanwhile (cannot happen for one order's serial requests)
        log.warning("payment.authorize_lost_race", order_id=request.order_id)
        return
    events: list[Event] = [authorized_event]
    if authorized.get("closed"):
        # The order ended while we were authorizing: release the hold at once.
        voided = await _void(db, authorized, env, ORDER_CLOSED)
        if voided is not None:
            events.append(voided)
    await _decide(db, authorized, key, envelope, events)
    await _emit(ctx, events)


async def _finish_failed(
    ctx: HandlerContext, payment: Doc, key: str, failed: PaymentFailed
) -> None:
    moved = await store.move(
        ctx.db,
        payment["_id"],
        PaymentStatus.FAILED,
        utcnow(),
        failure=failed.reason,
        **_decision(key, ctx.envelope, [failed]),  # the decision in the same write
    )
    if moved is None:
        await _decide(ctx.db, payment, key, ctx.envelope, [failed])
    await _emit(ctx, [failed])


# --- capture and void -------------------------------------------------------------------------


async def capture_payment(
    envelope: Envelope[OrderConfirmed], ctx: HandlerContext, *, env: PaymentEnv
) -> None:
    """Capture the authorized amount (at most the confirmed total) once the order is final."""
    order = envelope.data
    payment = await store.payment_for(ctx.db, order.order_id)
    if payment is None:
        log.warning("payment.capture_without_payment", order_id=order.order_id)
        return
    if await _replayed(ctx, payment.get("outcomes", {}).get("capture")):
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
    captured = await store.move(
        ctx.db,
        payment["_id"],
        PaymentStatus.CAPTURED,
        utcnow(),
        captured_cents=amount,
        **_decision("capture", envelope, [event]),  # the decision in the same write
    )
    if captured is None:
        return
    await _emit(ctx, [event])


async def void_payment(
    envelope: Envelope[OrderCancelled] | Envelope[OrderRejected],
    ctx: HandlerContext,
    *,
    env: PaymentEnv,
) -> None:
    """Release an authorization when the order ends unpaid; remember the end for late ones."""
    order = envelope.data
    payment = await store.close(ctx.db, order.order_id, order.user_id, order.reason, utcnow())
    if await _replayed(ctx, payment.get("outcomes", {}).get("void")):
        return
    if payment["status"] != PaymentStatus.AUTHORIZED:
        return  # nothing held; a later authorization sees `closed` and voids itself
    event = await _void(ctx.db, payment, env, order.reason)
    if event is not None:
        await _decide(ctx.db, payment, "void", envelope, [event])
        await _emit(ctx, [event])


async def _void(db: Db, payment: Doc, env: PaymentEnv, reason: str) -> PaymentVoided | None:
    """Void with the provider (idempotent key) and move the payment; None if someone else did."""
    await env.provider.void(
        key=f"{payment['order_id']}:void", authorization_id=payment["authorization_id"]
    )
    voided = await store.move(
        db, payment["_id"], PaymentStatus.VOIDED, utcnow(), void_reason=reason
    )
    if voided is None:
        return None
    return PaymentVoided(
        order_id=payment["order_id"],
        user_id=payment["user_id"],
        payment_id=payment["_id"],
        amount_cents=int(payment["amount_cents"]),
        currency=payment["currency"],
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
