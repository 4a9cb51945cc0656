"""Calls to the processor with retries: one authorization (numbered idempotency keys) and one
refund (one key per return), transient errors retried.

`authorize_with_retries` calls the provider under the key `<orderId>:<call number>` (numbers go
on from the order's earlier calls), retries a transient error with exponential backoff and jitter
(`domain.backoff_delay`) while the request's budget of calls lasts, and stops at an authorization
or a decline. Each call is handed to `on_call` as soon as it answers (a rolled-back run keeps
what it did, `inflight.py`), and the outcome says how it ended. A call that raises anything other
than a decline or a transient error is not recorded and propagates (the delivery is retried; the
processor answers the same key as before).

`refund_with_retries` refunds one received return under the single key
`<orderId>:refund:<returnId>` (`refund_key`), retried under that same key on a transient error
within the same budget and backoff: a processor that did not carry out a call may be asked
again, one that did answers "done" again, so a return is never refunded twice whatever reruns.
Both share the loop `_retrying`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from kit.clock import Clock, utcnow
from payment_service.domain import backoff_delay
from payment_service.provider import PaymentDeclined, PaymentProvider, TransientProviderError

type CallOutcome = Literal["authorized", "refunded", "declined", "transient"]


@dataclass(frozen=True, slots=True)
class ProviderCall:
    """One call to the processor and its answer."""

    number: int
    key: str
    at: datetime
    outcome: CallOutcome
    error: str | None = None
    authorization_id: str | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many calls one request may make, and the backoff between them (settings)."""

    max_attempts: int
    backoff_base: float
    backoff_cap: float

    def delay(self, retry: int, jitter: float) -> float:
        """The wait after call `retry` of this run (1 = after the first), `jitter` in [0, 1)."""
        return backoff_delay(retry, self.backoff_base, self.backoff_cap, jitter)


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """What the processor is asked to hold: an amount on a card, for an order."""

    order_id: str
    token: str
    amount_cents: int
    currency: str


@dataclass(frozen=True, slots=True)
class AuthorizeOutcome:
    """The calls one run made, in order, and how the run ended."""

    calls: tuple[ProviderCall, ...]

    @property
    def authorization_id(self) -> str | None:
        return next((c.authorization_id for c in self.calls if c.outcome == "authorized"), None)

    @property
    def result(self) -> Literal["authorized", "declined", "unavailable", "not_called"]:
        """`unavailable`: every call failed transiently; `not_called`: no budget was left."""
        if not self.calls:
            return "not_called"
        last = self.calls[-1].outcome
        if last == "transient":
            return "unavailable"
        return "declined" if last == "declined" else "authorized"


def idempotency_key(order_id: str, number: int) -> str:
    """The key of the order's call `number` (numbered over the order, across its requests)."""
    return f"{order_id}:{number}"


async def authorize_with_retries(
    provider: PaymentProvider,
    request: AuthorizationRequest,
    *,
    after: int,
    budget: int,
    retry: RetryPolicy,
    on_call: Callable[[ProviderCall], None] = lambda _: None,
    clock: Clock = utcnow,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    jitter: Callable[[], float] = random.random,
) -> AuthorizeOutcome:
    """Call the processor for `request` at most `budget` times, numbering calls after `after`,
    until it authorizes or declines; transient errors are retried after `retry.delay`."""

    async def call(attempt: int) -> ProviderCall:
        number = after + attempt
        key = idempotency_key(request.order_id, number)
        at = clock()
        try:
            auth = await provider.authorize(
                key=key,
                payment_ref=request.order_id,
                token=request.token,
                amount_cents=request.amount_cents,
                currency=request.currency,
            )
        except PaymentDeclined as exc:
            return ProviderCall(number, key, at, "declined", str(exc))
        except TransientProviderError as exc:
            return ProviderCall(number, key, at, "transient", str(exc))
        return ProviderCall(number, key, at, "authorized", None, auth.authorization_id)

    calls = await _retrying(call, budget, retry, on_call, sleep, jitter)
    return AuthorizeOutcome(tuple(calls))


async def _retrying(
    call: Callable[[int], Awaitable[ProviderCall]],
    budget: int,
    retry: RetryPolicy,
    on_call: Callable[[ProviderCall], None],
    sleep: Callable[[float], Awaitable[None]],
    jitter: Callable[[], float],
) -> list[ProviderCall]:
    """Make `call(1)`, `call(2)`, … at most `budget` times while it answers a transient error,
    waiting `retry.delay` between calls; each answer is handed to `on_call` as it comes."""
    calls: list[ProviderCall] = []
    for attempt in range(1, budget + 1):
        answer = await call(attempt)
        calls.append(answer)
        on_call(answer)
        if answer.outcome != "transient":
            break
        if attempt < budget:
            await sleep(retry.delay(attempt, jitter()))
    return calls


# --- refunds --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """What the processor is asked to pay back: part of a captured authorization, for a return."""

    order_id: str
    return_id: str
    authorization_id: str
    amount_cents: int


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    """The refund calls one run made, in order, and how the run ended."""

    calls: tuple[ProviderCall, ...]

    @property
    def result(self) -> Literal["refunded", "declined", "unavailable"]:
        """`unavailable`: every call failed transiently (or no budget was left)."""
        last = self.calls[-1].outcome if self.calls else "transient"
        if last in ("refunded", "declined"):
            return "refunded" if last == "refunded" else "declined"
        return "unavailable"

    @property
    def error(self) -> str | None:
        """The processor's last word when it did not refund."""
        return self.calls[-1].error if self.calls else None


def refund_key(order_id: str, return_id: str) -> str:
    """The one idempotency key of a return's refund (every retry and rerun reuses it)."""
    return f"{order_id}:refund:{return_id}"


async def refund_with_retries(
    provider: PaymentProvider,
    request: RefundRequest,
    *,
    budget: int,
    retry: RetryPolicy,
    on_call: Callable[[ProviderCall], None] = lambda _: None,
    clock: Clock = utcnow,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    jitter: Callable[[], float] = random.random,
) -> RefundOutcome:
    """Ask the processor to refund `request` at most `budget` times under its one key, until it
    refunds or declines; transient errors are retried after `retry.delay`."""
    key = refund_key(request.order_id, request.return_id)

    async def call(attempt: int) -> ProviderCall:
        at = clock()
        try:
            await provider.refund(
                key=key,
                authorization_id=request.authorization_id,
                amount_cents=request.amount_cents,
            )
        except PaymentDeclined as exc:
            return ProviderCall(attempt, key, at, "declined", str(exc))
        except TransientProviderError as exc:
            return ProviderCall(attempt, key, at, "transient", str(exc))
        return ProviderCall(attempt, key, at, "refunded")

    calls = await _retrying(call, budget, retry, on_call, sleep, jitter)
    return RefundOutcome(tuple(calls))
