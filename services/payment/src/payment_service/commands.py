"""The payment service's use cases: authorize, capture and void (saga steps), refund (a received
return), and the lookup.

Write boundary. Each saga command is a single-document step (`bus.documents`): no transaction
and no inbox row; one write of the payment per step carries its status, the decision with the
events it caused, the provider calls it made, the fields the request brings, the events
themselves (the payment's `outbox`) and the handled event's id (`processed`, which stops a
redelivery at the read). A write that finds the payment moved raises `Conflict` and the step
runs again from a fresh read. The provider calls happen before that write and outside any
transaction.

A provider call cannot be rolled back. Each carries the idempotency key `<orderId>:<call
number>`, numbered over the order's stored calls (`provider_calls.py`), so a step run again, or
a delivery redelivered after a crash, calls again with the same keys and the processor answers
each as it did (it never charges twice): the rerun records the same calls and decides the same.
What a rerun cannot see in the payment is a hold its lost run obtained just as the order ended
(a cancellation that committed in between): `inflight` remembers, in process, the calls of runs
whose write did not land, and such a rerun voids that hold. A *different* event asking for an
attempt already decided (the order service re-sending it) emits nothing new and never calls the
provider.

A refund is decided once per return id: the decision (refunded or failed, with its calls) is
stored under `refunds.<returnId>` with the payment's `refunded_cents`, in one write conditional
on the `refunded_cents` it read and on no decision for that return (two returns of one order
refunded at once: the second write finds the total moved and reruns against it; two deliveries
for one return at once: the second finds the first's decision and emits nothing). Its provider
call carries one key per return (`provider_calls.refund_key`), retried and rerun under that same
key, so a return is refunded at most once whatever is redelivered; a second ReturnReceived for a
decided return emits nothing.

Each saga command answers whether it handled its delivery (False: the payment had handled this
very delivery already, a duplicate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import structlog

from bus.documents import already_processed, pending_rows
from contracts import Envelope, Event, new_id
from contracts.order import (
    OrderCancelled,
    OrderConfirmed,
    OrderRejected,
    PaymentRequested,
    ReturnReceived,
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
from contracts.registry import event_class
from kit.errors import not_found
from kit.mongo import Doc
from kit.transactions import Conflict
from payment_service.deps import Deps
from payment_service.domain import (
    HISTORY_WINDOW,
    METHOD_NOT_FOUND,
    NOT_CAPTURED,
    ORDER_CLOSED,
    CaptureAwaited,
    Charge,
    FlaggedCharge,
    FraudInput,
    PaymentStatus,
    after_refund,
    awaits_capture,
    calls_left,
    capture_amount,
    decide_fraud,
    failure,
    is_scored,
    moves,
    refund_refusal,
    reopening,
    takes_request,
)
from payment_service.inflight import Run
from payment_service.provider_calls import (
    AuthorizationRequest,
    ProviderCall,
    RefundOutcome,
    RefundRequest,
    authorize_with_retries,
    refund_with_retries,
)
from payment_service.store import PAYMENTS, new_payment, numbered
from payment_service.users import MethodInfo

log = structlog.get_logger("payment.commands")


@dataclass(frozen=True, slots=True)
class Step[E: Event]:
    """One delivery a saga command handles: the event's envelope and its inbox id (stored on
    the payment by the step's write, so a redelivery stops at the read)."""

    envelope: Envelope[E]
    processed: str

    @property
    def cause(self) -> str:
        """The handled event's id (what a stored decision names as its cause)."""
        return self.envelope.id


# --- the lookup -------------------------------------------------------------------------------


async def payment_of(deps: Deps, order_id: str) -> Doc:
    """The order's payment with every provider call (404 `PAYMENT_NOT_FOUND`)."""
    payment = await deps.store.payment_for(order_id)
    if payment is None:
        raise not_found("PAYMENT_NOT_FOUND")
    return {**payment, "attempts": await deps.store.attempts(payment)}


# --- outcomes: what one event decided, so that another event asking the same emits nothing ----


def _snapshot(events: Sequence[Event]) -> list[Doc]:
    return [{"type": e.TYPE, "data": e.model_dump(mode="json")} for e in events]


def _restore(snapshots: Sequence[Doc]) -> list[Event]:
    return [event_class(s["type"]).model_validate(s["data"]) for s in snapshots]


def _decision(step: Step[Any], events: Sequence[Event]) -> Doc:
    """What `step` decided, stored with the payment's move in the same write."""
    return {"cause": step.cause, "events": _snapshot(events)}


async def _replayed(deps: Deps, step: Step[Any], payment: Doc, outcome: Doc | None) -> bool:
    """True when this key was decided already: re-emit if it was this very event, else nothing.

    (This very event finds its decision only where an older version stored it outside the
    transaction that then rolled back: its emission is owed. Since steps write their events in
    the same write as the decision, a redelivery stops at `processed` before it gets here.)
    """
    if outcome is None:
        return False
    if outcome["cause"] == step.cause:
        await _save(deps, step, payment, None, [], {}, events=_restore(outcome["events"]))
    else:
        log.info("payment.duplicate_request", cause=outcome["cause"])
    return True


def _duplicate(step: Step[Any], payment: Doc | None) -> bool:
    """True when the payment's steps handled this very delivery already."""
    return payment is not None and already_processed(payment, step.processed)


async def _save(
    deps: Deps,
    step: Step[Any],
    payment: Doc | None,
    new: tuple[str, PaymentRequested] | None,
    targets: Sequence[PaymentStatus],
    decisions: dict[str, Doc],
    *,
    events: Sequence[Event] = (),
    expect: Doc | None = None,
    **fields: Any,
) -> None:
    """The step's one write: the payment moved through `targets`, with the step's decisions,
    `fields`, its `events` and the handled event's id (a single-document step); on first sight
    (`payment` None) inserted as `new` (its id, and the request). The events go to the relay
    once written. `expect`: fields the update also requires to be as read.

    A payment that moved since it was read (another step, or a concurrent copy of this very
    delivery) raises `Conflict`: the step runs again from a fresh read.
    """
    now = deps.clock()
    rows = pending_rows([step.envelope.caused(event) for event in events], now)
    if payment is None:
        assert new is not None, "a payment is created for a request only"
        payment_id, request = new
        status = moves(PaymentStatus.PENDING, *targets)
        doc = new_payment(payment_id, request.order_id, request.user_id, now, **fields)
        doc.update(status=status.value, outcomes=decisions)
        await deps.store.insert(doc, rows, step.processed)
    else:
        payment_id = payment["_id"]
        status = moves(PaymentStatus(payment["status"]), *targets)
        changes = {name: value for name, value in fields.items() if payment.get(name) != value}
        changes.update({f"outcomes.{key}": value for key, value in decisions.items()})
        if status.value != payment["status"]:
            changes["status"] = status.value
        written = await deps.store.update(
            payment, rows, step.processed, expect=expect, **changes, updated_at=now
        )
        if not written:
            raise Conflict(f"payment {payment_id} moved while {step.processed} decided")
    deps.documents(PAYMENTS).written(payment_id, rows, None)


# --- authorize ------------------------------------------------------------------------------


def _flagged(payment: Doc | None) -> list[FlaggedCharge]:
    """Every card and amount the fraud rules flagged on this payment, with its request."""
    return [
        FlaggedCharge(flag["payment_method_id"], int(flag["amount_cents"]), flag["cause"])
        for flag in (payment or {}).get("flagged_charges", [])
    ]


def _charge(request: PaymentRequested) -> Charge:
    return Charge(request.payment_method_id, request.amount_cents)


def _scored(step: Step[PaymentRequested], payment: Doc | None) -> bool:
    """Whether the fraud rules weigh this request (not when a Manager cleared its charge)."""
    request = step.envelope.data
    return is_scored(request.review_passed, _flagged(payment), _charge(request), step.cause)


async def _settled(
    deps: Deps, step: Step[PaymentRequested], payment: Doc, keys: tuple[str, str], *, holding: bool
) -> bool:
    """True when this request has nothing (left) to do: decided already (re-emitted if by this
    very event), an earlier request already authorized, or the order ended (unless a rolled-back
    run of this delivery holds an authorization: that hold is voided, not left in place)."""
    key, review_key = keys
    outcomes: Doc = payment.get("outcomes", {})
    if await _replayed(deps, step, payment, outcomes.get(key)):
        return True
    if _scored(step, payment) and await _replayed(deps, step, payment, outcomes.get(review_key)):
        return True
    status = PaymentStatus(payment["status"])
    if not takes_request(status, closed=bool(payment.get("closed")), holding=holding):
        # An earlier request already authorized, or the order ended: never charge again.
        log.info("payment.request_ignored", status=status, closed=payment.get("closed"))
        return True
    return False


def _via_pending(payment: Doc | None) -> list[PaymentStatus]:
    """A failed payment goes back to pending for the customer's next request."""
    return reopening(PaymentStatus(payment["status"]) if payment is not None else None)


async def _assess(
    deps: Deps, step: Step[PaymentRequested], payment: Doc | None
) -> tuple[MethodInfo | None, Doc, PaymentReviewRequired | None]:
    """The card (None: not this customer's), the fields this request sets on the payment (its
    amounts and card, and the fraud verdict unless a Manager cleared this very card and amount)
    and the review the verdict asks for, if it does."""
    request = step.envelope.data
    method = await deps.users.payment_method(request.user_id, request.payment_method_id)
    fields: Doc = {
        "amount_cents": request.amount_cents,
        "currency": request.currency,
        "payment_method_id": request.payment_method_id,
    }
    if method is None or not _scored(step, payment):
        return method, fields, None
    now = deps.clock()
    history = await deps.store.user_history(
        request.user_id, except_order=request.order_id, since=now - HISTORY_WINDOW
    )
    decision = decide_fraud(
        FraudInput(
            amount_cents=request.amount_cents,
            token=method.token,
            now=now,
            history=history,
            account_created_at=method.account_created_at,
            account_region=method.account_region,
            order_region=step.envelope.actor.region,
        ),
        _charge(request),
        cause=step.cause,
        threshold=deps.settings.fraud_threshold,
        flagged_before=_flagged(payment),
    )
    verdict = decision.verdict
    fields["fraud"] = {
        "score": verdict.score,
        "reasons": list(verdict.reasons),
        "flagged": decision.flagged,
    }
    if not decision.flagged:
        return method, fields, None
    # What a Manager's review of this verdict can clear, and nothing else.
    fields["flagged_charges"] = [asdict(flag) for flag in decision.flagged_charges]
    review = PaymentReviewRequired(
        order_id=request.order_id,
        user_id=request.user_id,
        fraud_score=verdict.score,
        reasons=verdict.reasons,
    )
    return method, fields, review


async def _call_provider(
    deps: Deps, request: PaymentRequested, run: Run, history: Sequence[Doc]
) -> None:
    """Call the processor until this request is authorized, declined or out of calls; each
    answer is appended to `run.calls` as it comes (calls of earlier runs count: `history`)."""
    mine = [a["outcome"] for a in history if a["request"] == request.attempt]

    def record(call: ProviderCall) -> None:
        doc: Doc = {
            "number": call.number,
            "request": request.attempt,
            "payment_method_id": request.payment_method_id,
            "idempotency_key": call.key,
            "at": call.at,
            "outcome": call.outcome,
            "error": call.error,
        }
        if call.authorization_id is not None:
            doc["authorization_id"] = call.authorization_id
        run.calls.append(doc)

    await authorize_with_retries(
        deps.provider,
        AuthorizationRequest(request.order_id, run.token, request.amount_cents, request.currency),
        after=max((int(a["number"]) for a in history), default=0),
        budget=calls_left(mine, deps.settings.max_attempts),
        retry=deps.retry,
        on_call=record,
        clock=deps.clock,
    )


async def authorize(deps: Deps, step: Step[PaymentRequested]) -> bool:
    """Fraud rules (unless a Manager cleared this very card and amount), then authorize with
    retries; one write of the payment with whatever was decided.

    A rolled-back run of this very delivery (what it settled, the calls it made) is resumed;
    it is forgotten once a run's write lands, whatever it decided.
    """
    handled = await _authorize(deps, step, deps.inflight.get(step.cause))
    deps.inflight.forget(step.cause)
    return handled


async def _authorize(deps: Deps, step: Step[PaymentRequested], run: Run | None) -> bool:
    request = step.envelope.data
    keys = (str(request.attempt), f"{request.attempt}/review")
    payment = await deps.store.payment_for(request.order_id)
    if _duplicate(step, payment):
        return False
    holding = run is not None and run.authorization_id is not None
    if payment is not None and await _settled(deps, step, payment, keys, holding=holding):
        return True
    stored = await deps.store.attempts(payment) if payment is not None else []
    new = (payment["_id"] if payment is not None else new_id(), request)
    if run is None:
        method, assessed, review = await _assess(deps, step, payment)
        if method is None:
            failed = _failed(request, new[0], METHOD_NOT_FOUND, max(1, len(stored)), True)
            await _fail(deps, step, payment, new, failed, **assessed, attempts=stored)
            return True
        if review is not None:
            decisions = {keys[1]: _decision(step, [review])}
            via = _via_pending(payment)
            await _save(
                deps,
                step,
                payment,
                new,
                via,
                decisions,
                events=[review],
                **assessed,
                attempts=stored,
            )
            return True
        run = deps.inflight.start(step.cause, assessed, method.token)
    await _call_provider(deps, request, run, numbered([*stored, *run.calls]))
    await _decide(deps, step, payment, new, numbered([*stored, *run.calls]), run)
    return True


async def _decide(
    deps: Deps,
    step: Step[PaymentRequested],
    payment: Doc | None,
    new: tuple[str, PaymentRequested],
    calls: list[Doc],
    run: Run,
) -> None:
    """Write what the calls decided: authorized (and voided at once if the order ended
    meanwhile), or failed."""
    request = step.envelope.data
    payment_id = new[0]
    attempts = max(1, max((int(c["number"]) for c in calls), default=0))
    authorization_id = run.authorization_id
    if authorization_id is None:
        reason, retryable = failure(
            [c["outcome"] for c in calls if c["request"] == request.attempt]
        )
        failed = _failed(request, payment_id, reason, attempts, retryable)
        await _fail(deps, step, payment, new, failed, **run.fields, attempts=calls)
        return
    authorized = PaymentAuthorized(
        order_id=request.order_id,
        user_id=request.user_id,
        payment_id=payment_id,
        amount_cents=request.amount_cents,
        currency=request.currency,
        fraud_flag=not _scored(step, payment),
        attempts=attempts,
    )
    events: list[Event] = [authorized]
    targets = [*_via_pending(payment), PaymentStatus.AUTHORIZED]
    fields: Doc = {**run.fields, "attempts": calls, "authorization_id": authorization_id}
    if payment is not None and payment.get("closed"):
        # The order ended while we were authorizing: release the hold at once.
        held = {
            **fields,
            "_id": payment_id,
            "order_id": request.order_id,
            "user_id": request.user_id,
        }
        events.append(await _void(deps, held, ORDER_CLOSED))
        targets.append(PaymentStatus.VOIDED)
        fields["void_reason"] = ORDER_CLOSED
    decisions = {str(request.attempt): _decision(step, events)}
    await _save(deps, step, payment, new, targets, decisions, events=events, **fields)


def _failed(
    request: PaymentRequested, payment_id: str, reason: str, attempts: int, retryable: bool
) -> PaymentFailed:
    return PaymentFailed(
        order_id=request.order_id,
        user_id=request.user_id,
        payment_id=payment_id,
        reason=reason,
        attempts=attempts,
        retryable=retryable,
    )


async def _fail(
    deps: Deps,
    step: Step[PaymentRequested],
    payment: Doc | None,
    new: tuple[str, PaymentRequested],
    failed: PaymentFailed,
    **fields: Any,
) -> None:
    targets = [*_via_pending(payment), PaymentStatus.FAILED]
    decisions = {str(step.envelope.data.attempt): _decision(step, [failed])}
    await _save(
        deps,
        step,
        payment,
        new,
        targets,
        decisions,
        events=[failed],
        **fields,
        failure=failed.reason,
    )


# --- capture and void -------------------------------------------------------------------------


async def capture(deps: Deps, step: Step[OrderConfirmed]) -> bool:
    """Capture the authorized amount (at most the confirmed total) once the order is final."""
    order = step.envelope.data
    payment = await deps.store.payment_for(order.order_id)
    if payment is None:
        log.warning("payment.capture_without_payment", order_id=order.order_id)
        return True
    if _duplicate(step, payment):
        return False
    if await _replayed(deps, step, payment, payment.get("outcomes", {}).get("capture")):
        return True
    if payment["status"] != PaymentStatus.AUTHORIZED:
        # Voided, failed or never authorized: nothing may be captured (architecture.md).
        log.warning("payment.capture_refused", order_id=order.order_id, status=payment["status"])
        return True
    amount = capture_amount(order.total_cents, int(payment["amount_cents"]))
    await deps.provider.capture(
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
    decisions = {"capture": _decision(step, [event])}
    await _save(
        deps,
        step,
        payment,
        None,
        [PaymentStatus.CAPTURED],
        decisions,
        events=[event],
        captured_cents=amount,
    )
    return True


async def void(deps: Deps, step: Step[OrderCancelled | OrderRejected]) -> bool:
    """Release an authorization when the order ends unpaid; remember the end for late ones."""
    order = step.envelope.data
    payment = await deps.store.payment_for(order.order_id)
    if _duplicate(step, payment):
        return False
    if payment is None:
        # Ended before payment saw it: the stub makes a late request change nothing.
        stub = new_payment(
            new_id(),
            order.order_id,
            order.user_id,
            deps.clock(),
            closed=True,
            closed_reason=order.reason,
        )
        await deps.store.insert(stub, [], step.processed)
        return True
    if await _replayed(deps, step, payment, payment.get("outcomes", {}).get("void")):
        return True
    closing: Doc = {} if payment.get("closed") else {"closed": True, "closed_reason": order.reason}
    if payment["status"] != PaymentStatus.AUTHORIZED:
        # Nothing held; a later authorization sees `closed` and voids itself.
        if closing:
            await _save(deps, step, payment, None, [], {}, **closing)
        return True
    event = await _void(deps, payment, order.reason)
    decisions = {"void": _decision(step, [event])}
    await _save(
        deps,
        step,
        payment,
        None,
        [PaymentStatus.VOIDED],
        decisions,
        events=[event],
        **closing,
        void_reason=order.reason,
    )
    return True


async def _void(deps: Deps, held: Doc, reason: str) -> PaymentVoided:
    """Void `held` (a payment's id, order, user, amount, currency and authorization) with the
    processor (idempotent key): the event saying so."""
    await deps.provider.void(
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


# --- refunds ----------------------------------------------------------------------------------


async def refund(deps: Deps, step: Step[ReturnReceived]) -> bool:
    """Refund a received return once: `PaymentRefunded`, or `PaymentRefundFailed` with why.

    An authorized payment of an open order waits for its capture (`CaptureAwaited`: the
    delivery is retried). Refused without a call when the payment was never captured
    (`NOT_CAPTURED`: voided, failed, pending, or unknown to payment) or the amount
    exceeds what was captured less earlier refunds (`REFUND_EXCEEDS_CAPTURE`); 0 is refunded
    without a call; else the processor is asked (retried within `max_attempts`) and may decline
    (`DECLINED`) or stay unavailable (`PROVIDER_UNAVAILABLE`). A return decided already (this
    delivery again, or another ReturnReceived for it) changes nothing and emits nothing.
    """
    returned = step.envelope.data
    payment = await deps.store.payment_for(returned.order_id)
    if _duplicate(step, payment):
        return False
    if payment is None:
        log.warning("payment.refund_without_payment", order_id=returned.order_id)
        await _refund_stub(deps, step)
        return True
    if returned.return_id in payment.get("refunds", {}):
        log.info("payment.refund_decided_already", return_id=returned.return_id)
        return True
    status = PaymentStatus(payment["status"])
    if awaits_capture(status, closed=bool(payment.get("closed"))):
        raise CaptureAwaited(f"payment of {returned.order_id} is not captured yet: retry")
    captured = int(payment.get("captured_cents") or 0)
    refunded = int(payment.get("refunded_cents") or 0)
    reason = refund_refusal(status, captured, refunded, returned.refund_cents)
    outcome = RefundOutcome(())
    if reason is None and returned.refund_cents > 0:
        request = RefundRequest(
            returned.order_id,
            returned.return_id,
            payment["authorization_id"],
            returned.refund_cents,
        )
        outcome = await refund_with_retries(
            deps.provider,
            request,
            budget=deps.settings.max_attempts,
            retry=deps.retry,
            clock=deps.clock,
        )
        if outcome.result != "refunded":
            reason = failure([call.outcome for call in outcome.calls])[0]
    paid = returned.refund_cents if reason is None else 0
    event = _refund_event(returned, payment, reason)
    targets = after_refund(status, captured, refunded + paid) if reason is None else []
    await _save(
        deps,
        step,
        payment,
        None,
        targets,
        {},
        events=[event],
        expect={
            "refunded_cents": payment.get("refunded_cents"),
            f"refunds.{returned.return_id}": {"$exists": False},
        },
        refunded_cents=refunded + paid,
        **{f"refunds.{returned.return_id}": _refund_entry(deps, step, reason, outcome)},
    )
    return True


def _refund_event(
    returned: ReturnReceived, payment: Doc, reason: str | None
) -> PaymentRefunded | PaymentRefundFailed:
    facts: Doc = {
        "order_id": returned.order_id,
        "user_id": payment.get("user_id") or returned.user_id,
        "payment_id": payment["_id"],
        "amount_cents": returned.refund_cents,
        "currency": payment.get("currency") or returned.currency,
        "return_id": returned.return_id,
    }
    if reason is None:
        return PaymentRefunded(**facts)
    return PaymentRefundFailed(**facts, reason=reason)


def _refund_entry(
    deps: Deps, step: Step[ReturnReceived], reason: str | None, outcome: RefundOutcome
) -> Doc:
    """What the payment keeps of a return's refund (`store.py`)."""
    returned = step.envelope.data
    return {
        "return_id": returned.return_id,
        "amount_cents": returned.refund_cents,
        "status": "refunded" if reason is None else "failed",
        "reason": reason,
        "error": outcome.error if reason is not None else None,
        "at": deps.clock(),
        "idempotency_key": outcome.calls[0].key if outcome.calls else None,
        "calls": [
            {"number": c.number, "at": c.at, "outcome": c.outcome, "error": c.error}
            for c in outcome.calls
        ],
        "cause": step.cause,
    }


async def _refund_stub(deps: Deps, step: Step[ReturnReceived]) -> None:
    """A return of an order payment never saw: nothing to refund (`NOT_CAPTURED`), decided
    once on a stub payment that holds the decision and its event."""
    returned = step.envelope.data
    stub = {"_id": returned.payment_id, "currency": returned.currency}
    event = _refund_event(returned, stub, NOT_CAPTURED)
    now = deps.clock()
    entry = _refund_entry(deps, step, NOT_CAPTURED, RefundOutcome(()))
    doc = new_payment(
        returned.payment_id,
        returned.order_id,
        returned.user_id,
        now,
        currency=returned.currency,
        refunded_cents=0,
        refunds={returned.return_id: entry},
    )
    rows = pending_rows([step.envelope.caused(event)], now)
    await deps.store.insert(doc, rows, step.processed)
    deps.documents(PAYMENTS).written(returned.payment_id, rows, None)
