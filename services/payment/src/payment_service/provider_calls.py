"""One authorization with the processor: numbered idempotency keys, transient errors retried.

`authorize_with_retries` calls the provider under the key `<orderId>:<call number>` (numbers go
on from the order's earlier calls), retries a transient error with exponential backoff and jitter
(`domain.backoff_delay`) while the request's budget of calls lasts, and stops at an authorization
or a decline. Each call is handed to `on_call` as soon as it answers (a rolled-back run keeps
what it did, `inflight.py`), and the outcome says how it ended. A call that raises anything other
than a decline or a transient error is not recorded and propagates (the delivery is retried; the
processor answers the same key as before).
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

type CallOutcome = Literal["authorized", "declined", "transient"]


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
        return "unavailable" if last == "transient" else last


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
    calls: list[ProviderCall] = []
    for attempt in range(1, budget + 1):
        number = after + attempt
        key = idempotency_key(request.order_id, number)
        at = clock()
        call: ProviderCall
        try:
            auth = await provider.authorize(
                key=key,
                payment_ref=request.order_id,
                token=request.token,
                amount_cents=request.amount_cents,
                currency=request.currency,
            )
        except PaymentDeclined as exc:
            call = ProviderCall(number, key, at, "declined", str(exc))
        except TransientProviderError as exc:
            call = ProviderCall(number, key, at, "transient", str(exc))
        else:
            call = ProviderCall(number, key, at, "authorized", None, auth.authorization_id)
        calls.append(call)
        on_call(call)
        if call.outcome != "transient":
            break
        if attempt < budget:
            await sleep(retry.delay(attempt, jitter()))
    return AuthorizeOutcome(tuple(calls))
