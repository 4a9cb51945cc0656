"""The sandbox processor outlives a restart of the payment service when it has a state file."""

from __future__ import annotations

from pathlib import Path

import pytest
from payment_service.provider import PaymentDeclined, SandboxProvider, TransientProviderError

pytestmark = pytest.mark.unit


async def test_a_restarted_service_captures_what_it_authorized_before(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.json"
    before = SandboxProvider(state_path=path)
    auth = await before.authorize(
        key="o1:1", payment_ref="o1", token="pm_card_ok", amount_cents=1_000, currency="USD"
    )
    with pytest.raises(PaymentDeclined):
        await before.authorize(
            key="o2:1", payment_ref="o2", token="pm_card_declined", amount_cents=5, currency="USD"
        )
    with pytest.raises(TransientProviderError):
        await before.authorize(
            key="o3:1", payment_ref="o3", token="pm_card_flaky", amount_cents=5, currency="USD"
        )

    after = SandboxProvider(state_path=path)  # the process was killed and started again
    again = await after.authorize(
        key="o1:1", payment_ref="o1", token="pm_card_ok", amount_cents=1_000, currency="USD"
    )
    assert again == auth  # the same key answers the same authorization, never a second charge
    assert len(after.charges("o1")) == 1
    with pytest.raises(PaymentDeclined):
        await after.authorize(
            key="o2:1", payment_ref="o2", token="pm_card_declined", amount_cents=5, currency="USD"
        )
    # The flaky card's call count survived too: its second call still fails, the third passes.
    with pytest.raises(TransientProviderError):
        await after.authorize(
            key="o3:2", payment_ref="o3", token="pm_card_flaky", amount_cents=5, currency="USD"
        )
    await after.capture(
        key="o1:capture", authorization_id=auth.authorization_id, amount_cents=1_000
    )
    await SandboxProvider(state_path=path).capture(
        key="o1:capture", authorization_id=auth.authorization_id, amount_cents=1_000
    )
    final = SandboxProvider(state_path=path)
    assert [e.operation for e in final.ledger if e.payment_ref == "o1"] == ["authorize", "capture"]


async def test_without_a_state_file_it_forgets_as_before() -> None:
    provider = SandboxProvider()
    with pytest.raises(PaymentDeclined, match="unknown authorization"):
        await provider.capture(
            key="k", authorization_id="auth_from_a_previous_life", amount_cents=1
        )


async def test_each_change_appends_one_line_and_a_torn_last_line_is_ignored(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sandbox.json"
    provider = SandboxProvider(state_path=path)
    auth = await provider.authorize(
        key="o1:1", payment_ref="o1", token="pm_card_ok", amount_cents=700, currency="USD"
    )
    await provider.capture(
        key="o1:capture", authorization_id=auth.authorization_id, amount_cents=700
    )
    assert len(path.read_text().splitlines()) == 2  # appended, never the whole state again

    with path.open("a") as journal:
        journal.write('{"entry": {"operation": "refu')  # killed in the middle of a write
    restarted = SandboxProvider(state_path=path)
    assert [e.operation for e in restarted.ledger] == ["authorize", "capture"]
    with pytest.raises(PaymentDeclined):  # captured before the crash: no void after it
        await restarted.void(key="o1:void", authorization_id=auth.authorization_id)
    await restarted.refund(key="o1:refund", authorization_id=auth.authorization_id, amount_cents=1)
    # The change after the torn line survives the next restart.
    again = SandboxProvider(state_path=path)
    assert [e.operation for e in again.ledger] == ["authorize", "capture", "refund"]


async def _captured(provider: SandboxProvider, token: str, amount: int = 1_000) -> str:
    auth = await provider.authorize(
        key="o1:1", payment_ref="o1", token=token, amount_cents=amount, currency="USD"
    )
    await provider.capture(
        key="o1:capture", authorization_id=auth.authorization_id, amount_cents=amount
    )
    return auth.authorization_id


async def test_a_refund_takes_at_most_what_was_captured_less_earlier_refunds() -> None:
    provider = SandboxProvider()
    auth = await _captured(provider, "pm_card_ok")
    await provider.refund(key="o1:refund:r1", authorization_id=auth, amount_cents=600)
    with pytest.raises(PaymentDeclined, match="cannot refund 401"):
        await provider.refund(key="o1:refund:r2", authorization_id=auth, amount_cents=401)
    # The same key again answers as done, without a second refund.
    await provider.refund(key="o1:refund:r1", authorization_id=auth, amount_cents=600)
    await provider.refund(key="o1:refund:r3", authorization_id=auth, amount_cents=400)
    assert [e.amount_cents for e in provider.operations("o1", "refund")] == [600, 400]
    with pytest.raises(PaymentDeclined):
        await provider.refund(key="o1:refund:r4", authorization_id=auth, amount_cents=1)


async def test_nothing_captured_nothing_refunded() -> None:
    provider = SandboxProvider()
    auth = await provider.authorize(
        key="o1:1", payment_ref="o1", token="pm_card_ok", amount_cents=500, currency="USD"
    )
    with pytest.raises(PaymentDeclined, match="nothing captured"):
        await provider.refund(key="k", authorization_id=auth.authorization_id, amount_cents=1)


async def test_the_refund_test_cards_decline_or_fail_transiently() -> None:
    declined = SandboxProvider()
    auth = await _captured(declined, "pm_card_refund_declined")
    with pytest.raises(PaymentDeclined, match="refund declined"):
        await declined.refund(key="o1:refund:r1", authorization_id=auth, amount_cents=10)
    flaky = SandboxProvider()
    auth = await _captured(flaky, "pm_card_refund_flaky")
    for _ in range(2):
        with pytest.raises(TransientProviderError):
            await flaky.refund(key="o1:refund:r1", authorization_id=auth, amount_cents=10)
    await flaky.refund(key="o1:refund:r1", authorization_id=auth, amount_cents=10)
    assert len(flaky.operations("o1", "refund")) == 1


async def test_a_restarted_sandbox_remembers_the_card_and_what_it_refunded(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sandbox.json"
    before = SandboxProvider(state_path=path)
    auth = await _captured(before, "pm_card_ok")
    await before.refund(key="o1:refund:r1", authorization_id=auth, amount_cents=900)
    after = SandboxProvider(state_path=path)
    with pytest.raises(PaymentDeclined):
        await after.refund(key="o1:refund:r2", authorization_id=auth, amount_cents=101)
    refusing = SandboxProvider(state_path=tmp_path / "other.json")
    other = await _captured(refusing, "pm_card_refund_declined")
    with pytest.raises(PaymentDeclined, match="refund declined"):
        await SandboxProvider(state_path=tmp_path / "other.json").refund(
            key="o1:refund:r1", authorization_id=other, amount_cents=1
        )
