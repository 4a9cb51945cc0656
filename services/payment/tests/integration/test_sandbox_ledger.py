"""The sandbox processor keeps its ledger in the payment database: any process using that database
(another replica, the service restarted) captures, voids and refunds what another authorized, and
two processes asking at once still get one answer per key, one settlement per authorization and
refunds within the capture."""

from __future__ import annotations

import asyncio

import pytest
from payment_service.provider import (
    SANDBOX_LEDGER,
    Authorization,
    PaymentDeclined,
    SandboxProvider,
    TransientProviderError,
)

from .conftest import NewSandbox

pytestmark = pytest.mark.integration


def replica(sandbox: SandboxProvider) -> SandboxProvider:
    """Another process's sandbox on the same database (a second pod, or this one restarted)."""
    return SandboxProvider(sandbox.ledger.database)


async def authorized(
    sandbox: SandboxProvider, token: str = "pm_card_ok", amount: int = 1_000
) -> str:
    auth = await sandbox.authorize(
        key="o1:1", payment_ref="o1", token=token, amount_cents=amount, currency="USD"
    )
    return auth.authorization_id


async def captured(sandbox: SandboxProvider, token: str = "pm_card_ok", amount: int = 1_000) -> str:
    auth = await authorized(sandbox, token, amount)
    await sandbox.capture(key="o1:capture", authorization_id=auth, amount_cents=amount)
    return auth


async def test_another_replica_captures_voids_and_refunds_what_one_authorized(
    new_sandbox: NewSandbox,
) -> None:
    first = await new_sandbox()
    auth = await first.authorize(
        key="o1:1", payment_ref="o1", token="pm_card_ok", amount_cents=1_000, currency="USD"
    )
    other = replica(first)
    again = await other.authorize(
        key="o1:1", payment_ref="o1", token="pm_card_ok", amount_cents=1_000, currency="USD"
    )
    assert again == auth  # the same key answers the same authorization, never a second charge
    await other.capture(key="o1:capture", authorization_id=auth.authorization_id, amount_cents=800)
    await replica(first).refund(
        key="o1:refund:r1", authorization_id=auth.authorization_id, amount_cents=300
    )
    with pytest.raises(PaymentDeclined, match="cannot refund 501"):
        await first.refund(
            key="o1:refund:r2", authorization_id=auth.authorization_id, amount_cents=501
        )
    held = await second_hold(first)
    await other.void(key="o2:void", authorization_id=held)
    assert [(e.operation, e.amount_cents) for e in await first.entries("o1")] == [
        ("authorize", 1_000),
        ("capture", 800),
        ("refund", 300),
    ]
    assert [(e.operation, e.amount_cents) for e in await first.entries("o2")] == [
        ("authorize", 500),
        ("void", 500),
    ]
    callers = await first.callers("o1")
    assert set(callers) == {"o1:1", "o1:capture", "o1:refund:r1"}


async def second_hold(sandbox: SandboxProvider) -> str:
    auth = await sandbox.authorize(
        key="o2:1", payment_ref="o2", token="pm_card_ok", amount_cents=500, currency="USD"
    )
    return auth.authorization_id


async def flaky(sandbox: SandboxProvider, key: str) -> Authorization:
    return await sandbox.authorize(
        key=key, payment_ref="o3", token="pm_card_flaky", amount_cents=5, currency="USD"
    )


async def test_declines_and_transient_answers_are_remembered_for_every_replica(
    new_sandbox: NewSandbox,
) -> None:
    first = await new_sandbox()
    with pytest.raises(TransientProviderError):
        await flaky(first, "o3:1")
    with pytest.raises(PaymentDeclined):
        await first.authorize(
            key="o2:1", payment_ref="o2", token="pm_card_declined", amount_cents=5, currency="USD"
        )
    other = replica(first)
    with pytest.raises(TransientProviderError):  # the same key, the same answer
        await flaky(other, "o3:1")
    with pytest.raises(PaymentDeclined):
        await other.authorize(
            key="o2:1", payment_ref="o2", token="pm_card_declined", amount_cents=5, currency="USD"
        )
    # The flaky card's calls are counted over the payment, whichever process made them.
    with pytest.raises(TransientProviderError):
        await flaky(other, "o3:2")
    third = await flaky(first, "o3:3")
    assert [c.authorization_id for c in await other.charges("o3")] == [third.authorization_id]


async def test_two_replicas_asking_at_once_get_one_answer_per_key_and_one_settlement(
    new_sandbox: NewSandbox,
) -> None:
    first = await new_sandbox()
    replicas = [first, *(replica(first) for _ in range(3))]
    answers = await asyncio.gather(
        *(
            s.authorize(
                key="o1:1", payment_ref="o1", token="pm_card_ok", amount_cents=900, currency="USD"
            )
            for s in replicas
        )
    )
    assert len(set(answers)) == 1 and len(await first.charges("o1")) == 1
    auth = answers[0].authorization_id
    # A capture and a void racing on two processes: one of them settles, the other is declined.
    results = await asyncio.gather(
        replicas[1].capture(key="o1:capture", authorization_id=auth, amount_cents=900),
        replicas[2].void(key="o1:void", authorization_id=auth),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["NoneType", "PaymentDeclined"]
    settled = [e.operation for e in await first.entries() if e.operation != "authorize"]
    assert len(settled) == 1
    # The same key again, on any replica, answers as done.
    (operation,) = settled
    if operation == "capture":
        await replicas[3].capture(key="o1:capture", authorization_id=auth, amount_cents=900)
    else:
        await replicas[3].void(key="o1:void", authorization_id=auth)
    assert len(await first.entries()) == 2


async def test_refunds_racing_on_replicas_never_exceed_the_capture(new_sandbox: NewSandbox) -> None:
    first = await new_sandbox()
    auth = await captured(first)
    results = await asyncio.gather(
        *(
            replica(first).refund(key=f"o1:refund:r{n}", authorization_id=auth, amount_cents=400)
            for n in range(4)
        ),
        return_exceptions=True,
    )
    assert sum(r is None for r in results) == 2  # 2 × 400 fit in 1000, a third would not
    assert [e.amount_cents for e in await first.operations("o1", "refund")] == [400, 400]


async def test_a_key_is_written_once_as_one_document(new_sandbox: NewSandbox) -> None:
    sandbox = await new_sandbox()
    auth = await captured(sandbox)
    await sandbox.refund(key="o1:refund:r1", authorization_id=auth, amount_cents=100)
    await sandbox.refund(key="o1:refund:r1", authorization_id=auth, amount_cents=100)
    # One document per authorization call, its capture and refunds inside it.
    assert await sandbox.ledger.database[SANDBOX_LEDGER].count_documents({}) == 1
    assert [e.operation for e in await sandbox.entries()] == ["authorize", "capture", "refund"]


async def test_what_no_process_authorized_is_unknown(new_sandbox: NewSandbox) -> None:
    sandbox = await new_sandbox()
    with pytest.raises(PaymentDeclined, match="unknown authorization"):
        await sandbox.capture(key="k", authorization_id="auth_from_elsewhere", amount_cents=1)


async def test_a_settled_authorization_is_not_settled_again(new_sandbox: NewSandbox) -> None:
    sandbox = await new_sandbox()
    auth = await authorized(sandbox, amount=10)
    await sandbox.void(key="o1:void", authorization_id=auth)
    await sandbox.void(key="o1:void", authorization_id=auth)
    assert len(await sandbox.operations("o1", "void")) == 1
    with pytest.raises(PaymentDeclined, match="cannot capture after void"):
        await sandbox.capture(key="o1:capture", authorization_id=auth, amount_cents=10)


async def test_a_capture_takes_at_most_what_was_authorized(new_sandbox: NewSandbox) -> None:
    sandbox = await new_sandbox()
    auth = await authorized(sandbox)
    with pytest.raises(PaymentDeclined, match="cannot capture 1001"):
        await sandbox.capture(key="o1:capture", authorization_id=auth, amount_cents=1_001)
    assert await sandbox.operations("o1", "capture") == []
    await sandbox.capture(key="o1:capture", authorization_id=auth, amount_cents=600)
    assert [e.amount_cents for e in await sandbox.operations("o1", "capture")] == [600]


async def test_a_refund_takes_at_most_what_was_captured_less_earlier_refunds(
    new_sandbox: NewSandbox,
) -> None:
    provider = await new_sandbox()
    auth = await captured(provider)
    await provider.refund(key="o1:refund:r1", authorization_id=auth, amount_cents=600)
    with pytest.raises(PaymentDeclined, match="cannot refund 401"):
        await provider.refund(key="o1:refund:r2", authorization_id=auth, amount_cents=401)
    # The same key again answers as done, without a second refund.
    await provider.refund(key="o1:refund:r1", authorization_id=auth, amount_cents=600)
    await provider.refund(key="o1:refund:r3", authorization_id=auth, amount_cents=400)
    assert [e.amount_cents for e in await provider.operations("o1", "refund")] == [600, 400]
    with pytest.raises(PaymentDeclined):
        await provider.refund(key="o1:refund:r4", authorization_id=auth, amount_cents=1)


async def test_nothing_captured_nothing_refunded(new_sandbox: NewSandbox) -> None:
    provider = await new_sandbox()
    auth = await authorized(provider, amount=500)
    with pytest.raises(PaymentDeclined, match="nothing captured"):
        await provider.refund(key="k", authorization_id=auth, amount_cents=1)


async def test_the_refund_test_cards_decline_or_fail_transiently(new_sandbox: NewSandbox) -> None:
    declined = await new_sandbox()
    auth = await captured(declined, "pm_card_refund_declined")
    with pytest.raises(PaymentDeclined, match="refund declined"):
        await replica(declined).refund(key="o1:refund:r1", authorization_id=auth, amount_cents=10)
    flaky = await new_sandbox()
    auth = await captured(flaky, "pm_card_refund_flaky")
    # Its two transient answers are counted per key over every replica.
    for asking in (flaky, replica(flaky)):
        with pytest.raises(TransientProviderError):
            await asking.refund(key="o1:refund:r1", authorization_id=auth, amount_cents=10)
    await replica(flaky).refund(key="o1:refund:r1", authorization_id=auth, amount_cents=10)
    assert len(await flaky.operations("o1", "refund")) == 1
    unavailable = await new_sandbox()
    auth = await captured(unavailable, "pm_card_refund_unavailable")
    with pytest.raises(TransientProviderError):
        await unavailable.refund(key="o1:refund:r1", authorization_id=auth, amount_cents=10)
