"""Refunds of received returns on the in-memory bus and the embedded store: exactly once per
return under duplicates, never more than captured less earlier refunds (by our own rule and by
the processor's), the processor declining or failing transiently, and the Admin lookup."""

from __future__ import annotations

import secrets

import pytest
from payment_service import commands
from payment_service.commands import Step
from payment_service.domain import CaptureAwaited
from payment_service.schemas import PaymentOut

from contracts.payment import PaymentRefunded, PaymentRefundFailed

from .conftest import AMOUNT, T0, Payments, cancelled, confirmed, received, requested

pytestmark = pytest.mark.integration


def order_id() -> str:
    return f"o-{secrets.token_hex(4)}"


async def captured(payments: Payments, token: str = "pm_card_ok", total: int = AMOUNT) -> str:
    """An order authorized on `token` and captured for `total`."""
    order = order_id()
    await payments.send(requested(order, token), confirmed(order, total=total))
    assert payments.types(order) == ["PaymentAuthorized", "PaymentCaptured"]
    return order


async def refunds(payments: Payments, order: str) -> list[int]:
    """The amounts the processor really paid back for `order`."""
    return [e.amount_cents for e in await payments.provider.operations(order, "refund")]


def outcomes(payments: Payments, order: str) -> list[tuple[str, str | None, int, str | None]]:
    """(type, returnId, amount, reason) of each refund event payment emitted for `order`."""
    found: list[tuple[str, str | None, int, str | None]] = []
    for envelope in payments.bus.published:
        data = envelope.data
        if isinstance(data, PaymentRefunded | PaymentRefundFailed) and data.order_id == order:
            found.append((envelope.type, data.return_id, data.amount_cents, data.reason))
    return found


async def test_a_return_is_refunded_once_whatever_is_redelivered(payments: Payments) -> None:
    order = await captured(payments)
    payment = await payments.payment(order)
    step = Step(received(order, "r-1", 1000, payment["_id"]), "inbox-r1")
    assert await commands.refund(payments.deps, step) is True
    assert await commands.refund(payments.deps, step) is False  # the same delivery again
    # The order service sending ReturnReceived again for the same return (a new envelope).
    await payments.send(received(order, "r-1", 1000), received(order, "r-1", 1000))
    assert outcomes(payments, order) == [("PaymentRefunded", "r-1", 1000, None)]
    (refunded,) = payments.emitted(PaymentRefunded, order)
    assert (refunded.payment_id, refunded.user_id, refunded.currency) == (
        payment["_id"],
        "u-customer",
        "USD",
    )
    assert await refunds(payments, order) == [1000]  # one refund on the processor's ledger
    (entry,) = await payments.provider.operations(order, "refund")
    assert entry.key == f"{order}:refund:r-1"
    after = await payments.payment(order)
    assert (after["status"], after["refunded_cents"]) == ("captured", 1000)  # partly refunded


async def test_two_returns_are_refunded_up_to_the_capture_and_no_further(
    payments: Payments,
) -> None:
    order = await captured(payments)
    await payments.send(received(order, "r-1", 1000), received(order, "r-2", AMOUNT - 1000))
    calls = payments.provider.calls
    # Nothing is left of the capture: a third return is refused without asking the processor.
    await payments.send(received(order, "r-3", 1))
    assert outcomes(payments, order) == [
        ("PaymentRefunded", "r-1", 1000, None),
        ("PaymentRefunded", "r-2", AMOUNT - 1000, None),
        ("PaymentRefundFailed", "r-3", 1, "REFUND_EXCEEDS_CAPTURE"),
    ]
    assert payments.provider.calls == calls
    assert await refunds(payments, order) == [1000, AMOUNT - 1000]
    payment = await payments.payment(order)
    assert (payment["status"], payment["refunded_cents"]) == ("refunded", AMOUNT)


async def test_a_refund_beyond_what_was_captured_is_refused_without_a_call(
    payments: Payments,
) -> None:
    # Fewer units were confirmed: 2000 captured of the 2500 held; the refund asks 2001.
    order = await captured(payments, total=2000)
    calls = payments.provider.calls
    await payments.send(received(order, "r-1", 2001))
    assert outcomes(payments, order) == [
        ("PaymentRefundFailed", "r-1", 2001, "REFUND_EXCEEDS_CAPTURE")
    ]
    assert payments.provider.calls == calls and await refunds(payments, order) == []
    payment = await payments.payment(order)
    assert (payment["status"], payment["refunded_cents"]) == ("captured", 0)
    assert payment["refunds"]["r-1"]["status"] == "failed"
    # The refusal is final for that return; another return within the capture is refunded.
    await payments.send(received(order, "r-1", 2000), received(order, "r-2", 2000))
    assert outcomes(payments, order)[1:] == [("PaymentRefunded", "r-2", 2000, None)]
    assert await refunds(payments, order) == [2000]


async def test_a_return_ahead_of_the_capture_waits_for_it(payments: Payments) -> None:
    """The confirmation's delivery is late (retried): the refund's delivery fails and is
    retried, and once the capture is in, the return is refunded."""
    order = order_id()
    await payments.send(requested(order, "pm_card_ok"))  # authorized, not captured yet
    early = received(order, "r-1", 500)
    with pytest.raises(CaptureAwaited):
        await payments.bus.dispatch(early)
    assert outcomes(payments, order) == [] and await refunds(payments, order) == []
    await payments.send(confirmed(order))
    await payments.bus.dispatch(early)  # redelivered
    assert outcomes(payments, order) == [("PaymentRefunded", "r-1", 500, None)]
    assert await refunds(payments, order) == [500]


async def test_a_payment_never_captured_refunds_nothing(payments: Payments) -> None:
    order = order_id()
    await payments.send(requested(order, "pm_card_ok"), cancelled(order))  # voided
    await payments.send(received(order, "r-1", 500))
    assert outcomes(payments, order) == [("PaymentRefundFailed", "r-1", 500, "NOT_CAPTURED")]
    assert await refunds(payments, order) == []
    assert (await payments.payment(order))["status"] == "voided"
    # An order payment never saw at all: refused once, on a stub that remembers it.
    unknown = order_id()
    envelope = received(unknown, "r-9", 700, payment_id="pay-9")
    await payments.send(envelope, received(unknown, "r-9", 700, payment_id="pay-9"))
    assert outcomes(payments, unknown) == [("PaymentRefundFailed", "r-9", 700, "NOT_CAPTURED")]
    assert payments.emitted(PaymentRefundFailed, unknown)[0].payment_id == "pay-9"
    assert await commands.refund(payments.deps, Step(envelope, "again")) is True
    assert len(outcomes(payments, unknown)) == 1


async def test_a_refund_of_nothing_is_granted_without_a_call(payments: Payments) -> None:
    order = await captured(payments)
    calls = payments.provider.calls
    await payments.send(received(order, "r-free", 0))  # a fully discounted line
    assert outcomes(payments, order) == [("PaymentRefunded", "r-free", 0, None)]
    assert payments.provider.calls == calls
    payment = await payments.payment(order)
    assert payment["refunds"]["r-free"]["idempotency_key"] is None
    assert (payment["status"], payment["refunded_cents"]) == ("captured", 0)


async def test_the_processor_declining_fails_the_refund(payments: Payments) -> None:
    order = await captured(payments, "pm_card_refund_declined")
    await payments.send(received(order, "r-1", 1000))
    assert outcomes(payments, order) == [("PaymentRefundFailed", "r-1", 1000, "DECLINED")]
    assert await refunds(payments, order) == []
    payment = await payments.payment(order)
    entry = payment["refunds"]["r-1"]
    assert (entry["status"], entry["error"], len(entry["calls"])) == (
        "failed",
        "refund declined",
        1,
    )
    assert payment["refunded_cents"] == 0


async def test_transient_errors_are_retried_under_the_same_key(payments: Payments) -> None:
    order = await captured(payments, "pm_card_refund_flaky")
    calls = payments.provider.calls
    await payments.send(received(order, "r-1", 1000))
    assert outcomes(payments, order) == [("PaymentRefunded", "r-1", 1000, None)]
    assert payments.provider.calls == calls + 3  # two transient answers, then the refund
    assert await refunds(payments, order) == [1000]
    entry = (await payments.payment(order))["refunds"]["r-1"]
    assert [c["outcome"] for c in entry["calls"]] == ["transient", "transient", "refunded"]
    assert entry["idempotency_key"] == f"{order}:refund:r-1"


async def test_an_unavailable_processor_fails_the_refund_after_the_budget(
    payments: Payments,
) -> None:
    order = await captured(payments, "pm_card_refund_unavailable")
    calls = payments.provider.calls
    await payments.send(received(order, "r-1", 1000))
    assert outcomes(payments, order) == [
        ("PaymentRefundFailed", "r-1", 1000, "PROVIDER_UNAVAILABLE")
    ]
    assert payments.provider.calls == calls + payments.deps.settings.max_attempts
    assert await refunds(payments, order) == []


async def test_a_refund_that_raced_another_is_decided_against_the_new_total(
    payments: Payments,
) -> None:
    """Return r-2 is refunded while r-1 is asking the processor: r-1's write finds the total
    moved (Conflict) and its rerun refuses it; the processor refused it too. Never more than
    the capture goes back."""
    order = await captured(payments)
    first, second = received(order, "r-1", 2000), received(order, "r-2", 1000)

    async def refund_the_other_meanwhile() -> None:
        await payments.bus.dispatch(second)

    payments.provider.before_refund = refund_the_other_meanwhile
    with pytest.raises(Exception, match="moved"):
        await payments.bus.dispatch(first)
    await payments.bus.dispatch(first)  # redelivered
    assert sorted(outcomes(payments, order)) == [
        ("PaymentRefundFailed", "r-1", 2000, "REFUND_EXCEEDS_CAPTURE"),
        ("PaymentRefunded", "r-2", 1000, None),
    ]
    assert await refunds(payments, order) == [1000]
    assert (await payments.payment(order))["refunded_cents"] == 1000


async def test_two_deliveries_for_one_return_at_once_decide_it_once(payments: Payments) -> None:
    """The order service's second ReturnReceived for r-1 is handled while the first is asking
    the processor; both are declined, and the first's write finds r-1 decided: one event."""
    order = await captured(payments, "pm_card_refund_declined")
    await payments.send(received(order, "r-0", 100))  # the payment has a refunded total now
    first, second = received(order, "r-1", 500), received(order, "r-1", 500)

    async def handle_the_other_meanwhile() -> None:
        await payments.bus.dispatch(second)

    payments.provider.before_refund = handle_the_other_meanwhile
    with pytest.raises(Exception, match="moved"):
        await payments.bus.dispatch(first)
    await payments.bus.dispatch(first)  # redelivered: decided already, nothing new
    assert outcomes(payments, order) == [
        ("PaymentRefundFailed", "r-0", 100, "DECLINED"),
        ("PaymentRefundFailed", "r-1", 500, "DECLINED"),
    ]


async def test_the_lookup_shows_refunds_and_the_refunded_total(payments: Payments) -> None:
    order = await captured(payments)
    await payments.send(received(order, "r-1", 1000))
    payments.clock.now = T0.replace(hour=13)
    await payments.send(received(order, "r-2", 5000))
    body = PaymentOut.of(await commands.payment_of(payments.deps, order)).model_dump(mode="json")
    assert body["refundedCents"] == 1000 and body["capturedCents"] == AMOUNT
    assert body["refunds"] == [
        {
            "returnId": "r-1",
            "amountCents": 1000,
            "status": "refunded",
            "reason": None,
            "at": "2026-03-01T12:00:00Z",
        },
        {
            "returnId": "r-2",
            "amountCents": 5000,
            "status": "failed",
            "reason": "REFUND_EXCEEDS_CAPTURE",
            "at": "2026-03-01T13:00:00Z",
        },
    ]
