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

A real processor outlives the service that calls it and answers every replica of it alike. The
sandbox keeps its ledger in the payment database's own collection `sandbox_ledger`: one document
per authorization call (`_id` = the call's idempotency key, so a key is answered once whichever
process asks first), holding its answer and, when it authorized, the capture or void that settled
it and the refunds taken from it. So a payment service killed and restarted, or another replica,
captures, voids or refunds what any instance authorized. Costs: one insert per authorization call,
one update per capture, void or refund (plus one read each); nothing else is written.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from dataclasses import dataclass
from typing import Literal, Protocol

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from kit.clock import utcnow
from kit.mongo import Db, Doc, IndexSpec


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


@dataclass(frozen=True)
class LedgerEntry:
    """One operation the processor carried out (a charge is an `authorize` entry)."""

    operation: Operation
    key: str
    payment_ref: str
    amount_cents: int
    authorization_id: str
    # The card an authorization charged (how its refunds behave); empty for other operations.
    token: str = ""


SANDBOX_LEDGER = "sandbox_ledger"

SANDBOX_INDEXES: list[IndexSpec] = [
    # Captures, voids and refunds name the authorization, not the key that made it.
    IndexSpec(SANDBOX_LEDGER, "authorization_id", unique=True, sparse=True, name="authorization"),
    # A payment's calls: the flaky card counts them, tests and the fault suite list them.
    IndexSpec(SANDBOX_LEDGER, "payment_ref", name="payment_ref"),
]

# Test tokens (module docstring).
DECLINED = "pm_card_declined"
UNAVAILABLE = "pm_card_unavailable"
FLAKY = "pm_card_flaky"
FLAKY_CALLS = 2
REFUND_DECLINED = "pm_card_refund_declined"
REFUND_FLAKY = "pm_card_refund_flaky"
REFUND_UNAVAILABLE = "pm_card_refund_unavailable"
REFUND_FLAKY_CALLS = 2


def caller() -> str:
    """Which payment process asks (host/pid: the pod and process on k8s), kept beside each
    operation so an operator (and the replica test) sees which instance did what."""
    return f"{socket.gethostname()}/{os.getpid()}"


class SandboxProvider:
    """The processor with the test tokens' behaviour, its ledger in `db.sandbox_ledger` (what it
    really did, shared by every process that uses the same database)."""

    def __init__(self, db: Db, *, latency_seconds: float = 0.0) -> None:
        self.ledger = db[SANDBOX_LEDGER]
        self.latency_seconds = latency_seconds
        self.calls = 0  # calls this instance answered (tests count them)
        self.caller = caller()

    async def authorize(
        self, *, key: str, payment_ref: str, token: str, amount_cents: int, currency: str
    ) -> Authorization:
        await self._latency()
        decided = await self._decide(key, payment_ref, token, amount_cents, currency)
        try:
            # Inserted first, read only when the key was answered before (a rerun, another
            # process): a new key, the usual case, costs this one round trip.
            await self.ledger.insert_one(decided)
        except DuplicateKeyError:
            stored: Doc | None = await self.ledger.find_one({"_id": key})
            assert stored is not None
            return _answer_of(stored)
        return _answer_of(decided)

    async def _decide(
        self, key: str, payment_ref: str, token: str, amount_cents: int, currency: str
    ) -> Doc:
        """The answer to a key not seen before, as the document that records it."""
        doc: Doc = {
            "_id": key,
            "payment_ref": payment_ref,
            "token": token,
            "amount_cents": amount_cents,
            "currency": currency,
            "at": utcnow(),
            "caller": self.caller,
        }
        if token == DECLINED:
            return doc | {"outcome": "declined", "message": "card declined"}
        if token == UNAVAILABLE or (
            # Counted only for the flaky card: the payment's other keys (a key asked again
            # is answered from its stored document, whatever this says).
            token == FLAKY
            and await self.ledger.count_documents({"payment_ref": payment_ref, "_id": {"$ne": key}})
            < FLAKY_CALLS
        ):
            return doc | {"outcome": "transient", "message": "processor unavailable"}
        return doc | {
            "outcome": "authorized",
            "authorization_id": f"auth_{secrets.token_hex(8)}",
            "refunds": [],
            "refunded_cents": 0,
        }

    async def capture(self, *, key: str, authorization_id: str, amount_cents: int) -> None:
        await self._settle("capture", key, authorization_id, amount_cents)

    async def void(self, *, key: str, authorization_id: str) -> None:
        await self._settle("void", key, authorization_id)

    async def _settle(
        self,
        operation: Literal["capture", "void"],
        key: str,
        authorization_id: str,
        amount: int | None = None,
    ) -> None:
        """Capture or void an authorization once (the first of them settles it); the same key
        again answers as done. The rules are the filter of one conditional update, so two
        processes cannot both settle it, and the usual case costs that one round trip; only a
        refusal reads the authorization, to say why."""
        await self._latency()
        if amount is not None and amount < 0:
            raise PaymentDeclined(f"cannot capture {amount}")
        settled: Doc = {"operation": operation, "key": key, "at": utcnow(), "caller": self.caller}
        rules: Doc = {"authorization_id": authorization_id, "settled": None}
        if amount is not None:
            settled["amount_cents"] = amount
            # Like a real processor: a capture takes at most what the card holds.
            rules["amount_cents"] = {"$gte": amount}
        done = await self.ledger.update_one(rules, {"$set": {"settled": settled}})
        if done.modified_count == 1:
            return
        auth = await self._authorization(authorization_id)
        if auth.get("settled") is None:
            raise PaymentDeclined(f"cannot capture {amount} of {auth['amount_cents']} authorized")
        if auth["settled"]["key"] != key:
            raise PaymentDeclined(f"cannot {operation} after {auth['settled']['operation']}")
        # The same key again: already done, never twice.

    async def refund(self, *, key: str, authorization_id: str, amount_cents: int) -> None:
        """Pay back part of what was captured: at most captured less refunded (the processor's
        own rule, on its ledger); the test tokens' refund behaviour first."""
        await self._latency()
        auth = await self._authorization(authorization_id)
        if _refunded_under(auth, key):
            return  # the same key again: already done, never twice
        token = auth["token"]
        if token == REFUND_FLAKY:
            counted: Doc | None = await self.ledger.find_one_and_update(
                {"_id": auth["_id"]},
                {"$push": {"refund_calls": key}},
                return_document=ReturnDocument.AFTER,
            )
            if counted is None or counted["refund_calls"].count(key) <= REFUND_FLAKY_CALLS:
                raise TransientProviderError("processor unavailable")
        if token == REFUND_UNAVAILABLE:
            raise TransientProviderError("processor unavailable")
        if token == REFUND_DECLINED:
            raise PaymentDeclined("refund declined")
        while not _refunded_under(auth, key):
            settled = auth.get("settled") or {}
            captured = int(settled["amount_cents"]) if settled.get("operation") == "capture" else 0
            refunded = int(auth["refunded_cents"])
            if not captured:
                raise PaymentDeclined("nothing captured to refund")
            if not 0 < amount_cents <= captured - refunded:
                raise PaymentDeclined(
                    f"cannot refund {amount_cents}: {captured} captured, {refunded} refunded"
                )
            entry = {
                "key": key,
                "amount_cents": amount_cents,
                "at": utcnow(),
                "caller": self.caller,
            }
            # Conditional on the total read: a refund by another process meanwhile reruns this
            # check against the new total, so the limit holds across replicas.
            done = await self.ledger.update_one(
                {"_id": auth["_id"], "refunded_cents": refunded, "refunds.key": {"$ne": key}},
                {
                    "$push": {"refunds": entry},
                    "$inc": {"refunded_cents": amount_cents},
                },
            )
            if done.modified_count == 1:
                return
            auth = await self._authorization(authorization_id)

    async def _authorization(self, authorization_id: str) -> Doc:
        auth: Doc | None = await self.ledger.find_one({"authorization_id": authorization_id})
        if auth is None:
            raise PaymentDeclined(f"unknown authorization {authorization_id}")
        return auth

    async def _latency(self) -> None:
        self.calls += 1
        if self.latency_seconds:
            await asyncio.sleep(self.latency_seconds)

    # --- what the processor did (tests, the fault suite's ledger audit) ----------------------

    async def entries(self, payment_ref: str | None = None) -> list[LedgerEntry]:
        """Every operation carried out (for one payment), authorizations in the order they
        were made, each followed by its settlement and refunds."""
        query: Doc = {"outcome": "authorized"}
        if payment_ref is not None:
            query["payment_ref"] = payment_ref
        cursor = self.ledger.find(query).sort([("at", 1), ("_id", 1)])
        return [entry async for doc in cursor for entry in _entries_of(doc)]

    async def charges(self, payment_ref: str) -> list[LedgerEntry]:
        """The authorizations carried out for a payment (what the customer's card holds)."""
        return await self.operations(payment_ref, "authorize")

    async def operations(self, payment_ref: str, operation: Operation) -> list[LedgerEntry]:
        return [e for e in await self.entries(payment_ref) if e.operation == operation]

    async def callers(self, payment_ref: str) -> dict[str, str]:
        """Which process carried out each operation of a payment: operation key → caller."""
        found: dict[str, str] = {}
        async for doc in self.ledger.find({"payment_ref": payment_ref, "outcome": "authorized"}):
            found[doc["_id"]] = doc["caller"]
            for done in [doc.get("settled"), *doc.get("refunds", [])]:
                if done is not None:
                    found[done["key"]] = done["caller"]
        return found


def _refunded_under(auth: Doc, key: str) -> bool:
    return any(r["key"] == key for r in auth.get("refunds", []))


def _answer_of(doc: Doc) -> Authorization:
    """The stored answer to an authorization call, again: the authorization, or its error."""
    if doc["outcome"] == "declined":
        raise PaymentDeclined(doc["message"])
    if doc["outcome"] == "transient":
        raise TransientProviderError(doc["message"])
    return Authorization(doc["authorization_id"], int(doc["amount_cents"]), doc["currency"])


def _entries_of(doc: Doc) -> list[LedgerEntry]:
    """An authorization's document as ledger entries: the charge, its settlement, its refunds."""
    auth_id, ref = doc["authorization_id"], doc["payment_ref"]
    found = [
        LedgerEntry("authorize", doc["_id"], ref, int(doc["amount_cents"]), auth_id, doc["token"])
    ]
    settled: Doc | None = doc.get("settled")
    if settled is not None:
        # A void releases the whole authorization; a capture says what it took.
        amount = int(settled["amount_cents"] if "amount_cents" in settled else doc["amount_cents"])
        found.append(LedgerEntry(settled["operation"], settled["key"], ref, amount, auth_id))
    found += [
        LedgerEntry("refund", r["key"], ref, int(r["amount_cents"]), auth_id)
        for r in doc.get("refunds", [])
    ]
    return found
