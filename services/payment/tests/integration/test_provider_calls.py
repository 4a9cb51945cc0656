"""provider_calls.authorize_with_retries and refund_with_retries against the sandbox processor
(its ledger on the embedded store, a database per sandbox): keys, retries, backoff."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from payment_service.provider import Authorization, SandboxProvider
from payment_service.provider_calls import (
    AuthorizationRequest,
    AuthorizeOutcome,
    ProviderCall,
    RefundOutcome,
    RefundRequest,
    RetryPolicy,
    authorize_with_retries,
    refund_with_retries,
)

from .conftest import NewSandbox

pytestmark = pytest.mark.integration

RETRY = RetryPolicy(max_attempts=4, backoff_base=0.25, backoff_cap=1.5)
AT = datetime(2026, 1, 1, tzinfo=UTC)


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def authorize(
    provider: SandboxProvider, token: str, *, after: int = 0, budget: int = 4
) -> tuple[AuthorizeOutcome, list[ProviderCall], list[float]]:
    seen: list[ProviderCall] = []
    sleeps = Sleeps()
    outcome = await authorize_with_retries(
        provider,
        AuthorizationRequest("o-1", token, 2500, "USD"),
        after=after,
        budget=budget,
        retry=RETRY,
        on_call=seen.append,
        clock=lambda: AT,
        sleep=sleeps,
        jitter=lambda: 0.0,
    )
    return outcome, seen, sleeps.waits


async def test_an_ok_card_is_authorized_by_one_call_under_the_first_key(
    new_sandbox: NewSandbox,
) -> None:
    provider = await new_sandbox()
    outcome, seen, waits = await authorize(provider, "pm_card_ok")
    assert outcome.result == "authorized" and list(outcome.calls) == seen
    (call,) = outcome.calls
    assert (call.number, call.key, call.at, call.error) == (1, "o-1:1", AT, None)
    assert (
        outcome.authorization_id
        == call.authorization_id
        == (await provider.charges("o-1"))[0].authorization_id
    )
    assert waits == []


async def test_transient_errors_are_retried_with_backoff_until_authorized(
    new_sandbox: NewSandbox,
) -> None:
    provider = await new_sandbox()
    outcome, _, waits = await authorize(provider, "pm_card_flaky")
    assert outcome.result == "authorized"
    assert [(c.key, c.outcome) for c in outcome.calls] == [
        ("o-1:1", "transient"),
        ("o-1:2", "transient"),
        ("o-1:3", "authorized"),
    ]
    # Exponential backoff, jitter 0 picks the lower half: 0.25/2, then 0.5/2.
    assert waits == [0.125, 0.25]
    assert len(await provider.charges("o-1")) == 1


async def test_a_decline_is_final(new_sandbox: NewSandbox) -> None:
    provider = await new_sandbox()
    outcome, _, waits = await authorize(provider, "pm_card_declined")
    assert outcome.result == "declined" and len(outcome.calls) == 1
    assert outcome.calls[0].error == "card declined" and outcome.authorization_id is None
    assert waits == [] and await provider.charges("o-1") == []


async def test_an_unavailable_processor_uses_the_budget_and_no_more(
    new_sandbox: NewSandbox,
) -> None:
    provider = await new_sandbox()
    outcome, _, waits = await authorize(provider, "pm_card_unavailable", budget=3)
    assert outcome.result == "unavailable"
    assert [c.outcome for c in outcome.calls] == ["transient"] * 3
    assert len(waits) == 2  # no wait after the last call
    assert provider.calls == 3


async def test_numbers_go_on_from_earlier_calls_and_no_budget_means_no_call(
    new_sandbox: NewSandbox,
) -> None:
    provider = await new_sandbox()
    outcome, _, _ = await authorize(provider, "pm_card_ok", after=2)
    assert [c.key for c in outcome.calls] == ["o-1:3"]
    nothing, _, _ = await authorize(provider, "pm_card_ok", budget=0)
    assert nothing.result == "not_called" and provider.calls == 1


async def test_a_rerun_calls_again_under_the_same_keys_and_charges_nothing_twice(
    new_sandbox: NewSandbox,
) -> None:
    provider = await new_sandbox()
    first, _, _ = await authorize(provider, "pm_card_flaky")
    again, _, _ = await authorize(provider, "pm_card_flaky")
    assert [(c.key, c.outcome) for c in again.calls] == [(c.key, c.outcome) for c in first.calls]
    assert again.authorization_id == first.authorization_id
    assert len(await provider.charges("o-1")) == 1


async def test_an_unexpected_provider_failure_propagates_unrecorded(
    new_sandbox: NewSandbox,
) -> None:
    class Broken(SandboxProvider):
        async def authorize(
            self, *, key: str, payment_ref: str, token: str, amount_cents: int, currency: str
        ) -> Authorization:
            raise RuntimeError("connection reset")

    seen: list[ProviderCall] = []
    with pytest.raises(RuntimeError):
        await authorize_with_retries(
            Broken((await new_sandbox()).ledger.database),
            AuthorizationRequest("o-1", "pm_card_ok", 2500, "USD"),
            after=0,
            budget=4,
            retry=RETRY,
            on_call=seen.append,
        )
    assert seen == []


async def refund(
    provider: SandboxProvider, token: str, amount: int = 1000, *, budget: int = 4
) -> tuple[RefundOutcome, list[float]]:
    """Authorize and capture 2500 on `token`, then refund `amount` for return r-1."""
    auth, _, _ = await authorize(provider, token)
    assert auth.authorization_id is not None
    await provider.capture(
        key="o-1:capture", authorization_id=auth.authorization_id, amount_cents=2500
    )
    sleeps = Sleeps()
    outcome = await refund_with_retries(
        provider,
        RefundRequest("o-1", "r-1", auth.authorization_id, amount),
        budget=budget,
        retry=RETRY,
        clock=lambda: AT,
        sleep=sleeps,
        jitter=lambda: 0.0,
    )
    return outcome, sleeps.waits


async def test_a_refund_is_retried_under_its_one_key(new_sandbox: NewSandbox) -> None:
    provider = await new_sandbox()
    outcome, waits = await refund(provider, "pm_card_refund_flaky")
    assert outcome.result == "refunded" and outcome.error is None
    assert [(c.number, c.key, c.outcome) for c in outcome.calls] == [
        (1, "o-1:refund:r-1", "transient"),
        (2, "o-1:refund:r-1", "transient"),
        (3, "o-1:refund:r-1", "refunded"),
    ]
    assert waits == [0.125, 0.25]
    assert [e.amount_cents for e in await provider.operations("o-1", "refund")] == [1000]


async def test_a_refund_declined_or_never_answered_is_not_refunded(new_sandbox: NewSandbox) -> None:
    declined, waits = await refund(await new_sandbox(), "pm_card_refund_declined")
    assert (declined.result, declined.error, len(declined.calls), waits) == (
        "declined",
        "refund declined",
        1,
        [],
    )
    too_much, _ = await refund(await new_sandbox(), "pm_card_ok", amount=2501)
    assert too_much.result == "declined"
    provider = await new_sandbox()
    unavailable, waits = await refund(provider, "pm_card_refund_unavailable", budget=3)
    assert unavailable.result == "unavailable" and len(waits) == 2
    assert await provider.operations("o-1", "refund") == []
