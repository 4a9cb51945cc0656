"""The payment provider port and the sandbox adapter that stands in for a card processor.

The sandbox is the outside world (the only fake the service has): it keeps its own ledger in
memory, answers after a small latency, and behaves like a processor with idempotency keys: the
same key answers the same result again and never charges twice. Test tokens (api.md):
`pm_card_ok` authorizes, `pm_card_declined` is declined, `pm_card_flaky` fails transiently on the
first two calls of each payment, `pm_card_unavailable` always fails transiently; any other
`pm_…` token authorizes. Refunds follow the card that was charged: `pm_card_refund_declined`
authorizes and captures but its refunds are declined, `pm_card_refund_flaky` fails each refund
transiently on its first two calls (per idempotency key), `pm_card_refund_unavailable` always
fails refunds transiently. Like a real processor, a refund takes at most what was captured less
what was refunded already (on its own ledger), and a key it carried out answers as done again.

A real processor outlives the service that calls it. With `state_path` the sandbox keeps a journal
of its answers and ledger entries in that file (one JSON line appended per change, replayed at
start-up; rewriting the whole state per call cost 11 % of the payment service's CPU in the
benchmark and grew with every payment), so a payment service killed and restarted still captures
or voids what it authorized before; without it (unit tests) the sandbox lives and dies with the
process.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol


class ProviderError(Exception):
    """Base of what a provider call may raise."""


class TransientProviderError(ProviderError):
    """The processor could not answer now (timeout, 5xx): the same call may succeed later."""


class PaymentDeclined(ProviderError):
    """The card was declined: final, retrying does not help."""


@dataclass(frozen=True)
class Authorization:
    authorization_id: str
    amount_cents: int
    currency: str


class PaymentProvider(Protocol):
    """A card processor; `payment_ref` groups one payment's calls, `key` makes a call idempotent."""

    async def authorize(
        self, *, key: str, payment_ref: str, token: str, amount_cents: int, currency: str
    ) -> Authorization: ...

    async def capture(self, *, key: str, authorization_id: str, amount_cents: int) -> None: ...

    async def void(self, *, key: str, authorization_id: str) -> None: ...

    async def refund(self, *, key: str, authorization_id: str, amount_cents: int) -> None: ...


type Operation = Literal["authorize", "capture", "void", "refund"]


@dataclass
class LedgerEntry:
    """One operation the processor carried out (a charge is an `authorize` entry)."""

    operation: Operation
    key: str
    payment_ref: str
    amount_cents: int
    authorization_id: str
    # The card an authorization charged (how its refunds behave); empty for other operations.
    token: str = ""


# Test tokens whose charges refund badly (module docstring).
REFUND_DECLINED = "pm_card_refund_declined"
REFUND_FLAKY = "pm_card_refund_flaky"
REFUND_UNAVAILABLE = "pm_card_refund_unavailable"
REFUND_FLAKY_CALLS = 2


@dataclass
class SandboxProvider:
    """In-memory processor with the test tokens' behaviour; `ledger` is what it really did."""

    latency_seconds: float = 0.0
    ledger: list[LedgerEntry] = field(default_factory=list)
    calls: int = 0
    _answers: dict[str, Authorization | ProviderError] = field(default_factory=dict)
    _keys_per_payment: dict[str, int] = field(default_factory=dict)
    _authorizations: dict[str, LedgerEntry] = field(default_factory=dict)
    _refund_calls: dict[str, int] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    state_path: Path | None = None

    def __post_init__(self) -> None:
        if self.state_path is not None and self.state_path.exists():
            text = self.state_path.read_text()
            for line in text.splitlines():
                try:
                    change = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the last line, cut short by a crash: that change never answered
                self._replay(change)
            if text and not text.endswith("\n"):
                self._record_line("")  # end the torn line: the next change starts its own

    def _replay(self, change: dict[str, Any]) -> None:
        if "answer" in change:
            key, payment_ref = change["answer"], change["payment_ref"]
            self._keys_per_payment[payment_ref] = change["calls"]
            self._answers[key] = _answer_from(change["result"])
        if change.get("entry") is not None:
            entry = LedgerEntry(**change["entry"])
            self.ledger.append(entry)
            if entry.operation == "authorize":
                self._authorizations[entry.authorization_id] = entry

    def _record(self, change: dict[str, Any]) -> None:
        """Append one change to the journal before the call answers."""
        self._record_line(json.dumps(change))

    def _record_line(self, line: str) -> None:
        if self.state_path is None:
            return
        with self.state_path.open("a") as journal:
            journal.write(line + "\n")

    def charges(self, payment_ref: str) -> list[LedgerEntry]:
        """The authorizations carried out for a payment (what the customer's card holds)."""
        return [
            e for e in self.ledger if e.payment_ref == payment_ref and e.operation == "authorize"
        ]

    def operations(self, payment_ref: str, operation: Operation) -> list[LedgerEntry]:
        return [e for e in self.ledger if e.payment_ref == payment_ref and e.operation == operation]

    async def authorize(
        self, *, key: str, payment_ref: str, token: str, amount_cents: int, currency: str
    ) -> Authorization:
        await self._latency()
        async with self._lock:
            answer = self._answers.get(key)
            if answer is None:
                answer = self._decide(key, payment_ref, token, amount_cents, currency)
                self._answers[key] = answer
                entry = (
                    self._authorizations[answer.authorization_id]
                    if isinstance(answer, Authorization)
                    else None
                )
                self._record(
                    {
                        "answer": key,
                        "payment_ref": payment_ref,
                        "calls": self._keys_per_payment[payment_ref],
                        "result": _answer_to(answer),
                        "entry": asdict(entry) if entry is not None else None,
                    }
                )
        if isinstance(answer, ProviderError):
            raise answer
        return answer

    def _decide(
        self, key: str, payment_ref: str, token: str, amount_cents: int, currency: str
    ) -> Authorization | ProviderError:
        calls = self._keys_per_payment.get(payment_ref, 0) + 1
        self._keys_per_payment[payment_ref] = calls
        if token == "pm_card_declined":
            return PaymentDeclined("card declined")
        if token == "pm_card_unavailable" or (token == "pm_card_flaky" and calls <= 2):
            return TransientProviderError("processor unavailable")
        authorization = Authorization(f"auth_{secrets.token_hex(8)}", amount_cents, currency)
        entry = LedgerEntry(
            "authorize", key, payment_ref, amount_cents, authorization.authorization_id, token
        )
        self.ledger.append(entry)
        self._authorizations[authorization.authorization_id] = entry
        return authorization

    async def capture(self, *, key: str, authorization_id: str, amount_cents: int) -> None:
        await self._settle("capture", key, authorization_id, amount_cents)

    async def void(self, *, key: str, authorization_id: str) -> None:
        await self._settle("void", key, authorization_id)

    async def refund(self, *, key: str, authorization_id: str, amount_cents: int) -> None:
        """Pay back part of what was captured: at most captured less refunded (the processor's
        own rule, on its ledger); the test tokens' refund behaviour first."""
        await self._latency()
        async with self._lock:
            if any(e.key == key for e in self.ledger):
                return  # the same key again: already done, never twice
            auth = self._authorizations.get(authorization_id)
            if auth is None:
                raise PaymentDeclined(f"unknown authorization {authorization_id}")
            calls = self._refund_calls.get(key, 0) + 1
            self._refund_calls[key] = calls
            if auth.token == REFUND_UNAVAILABLE or (
                auth.token == REFUND_FLAKY and calls <= REFUND_FLAKY_CALLS
            ):
                raise TransientProviderError("processor unavailable")
            if auth.token == REFUND_DECLINED:
                raise PaymentDeclined("refund declined")
            done = [e for e in self.ledger if e.authorization_id == authorization_id]
            captured = sum(e.amount_cents for e in done if e.operation == "capture")
            refunded = sum(e.amount_cents for e in done if e.operation == "refund")
            if not captured:
                raise PaymentDeclined("nothing captured to refund")
            if not 0 < amount_cents <= captured - refunded:
                raise PaymentDeclined(
                    f"cannot refund {amount_cents}: {captured} captured, {refunded} refunded"
                )
            entry = LedgerEntry("refund", key, auth.payment_ref, amount_cents, authorization_id)
            self.ledger.append(entry)
            self._record({"entry": asdict(entry)})

    async def _settle(
        self,
        operation: Literal["capture", "void"],
        key: str,
        authorization_id: str,
        amount: int | None = None,
    ) -> None:
        await self._latency()
        async with self._lock:
            if any(e.key == key for e in self.ledger):
                return  # the same key again: already done, never twice
            auth = self._authorizations.get(authorization_id)
            if auth is None:
                raise PaymentDeclined(f"unknown authorization {authorization_id}")
            done = {e.operation for e in self.ledger if e.authorization_id == authorization_id}
            if (
                operation == "capture"
                and "void" in done
                or operation == "void"
                and "capture" in done
            ):
                raise PaymentDeclined(f"cannot {operation} after {done}")
            if operation == "capture" and not 0 <= (amount or 0) <= auth.amount_cents:
                # Like a real processor: a capture takes at most what the card holds.
                raise PaymentDeclined(f"cannot capture {amount} of {auth.amount_cents} authorized")
            entry = LedgerEntry(
                operation,
                key,
                auth.payment_ref,
                auth.amount_cents if amount is None else amount,
                authorization_id,
            )
            self.ledger.append(entry)
            self._record({"entry": asdict(entry)})

    async def _latency(self) -> None:
        self.calls += 1
        if self.latency_seconds:
            await asyncio.sleep(self.latency_seconds)


def _answer_to(answer: Authorization | ProviderError) -> dict[str, Any]:
    if isinstance(answer, Authorization):
        return {"auth": asdict(answer)}
    kind = "declined" if isinstance(answer, PaymentDeclined) else "transient"
    return {"error": kind, "message": str(answer)}


def _answer_from(stored: dict[str, Any]) -> Authorization | ProviderError:
    if "auth" in stored:
        return Authorization(**stored["auth"])
    errors = {"declined": PaymentDeclined, "transient": TransientProviderError}
    return errors[stored["error"]](stored["message"])
