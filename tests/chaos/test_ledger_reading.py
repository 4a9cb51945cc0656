"""The fault suite reads the processor's ledger from the payment database, where every payment
process's sandbox keeps it, in the shape its audit takes."""

from __future__ import annotations

from typing import Any

import pytest
from payment_service.provider import SandboxProvider
from pymongo import AsyncMongoClient

from .suite import audit_entries, ledger_entries

pytestmark = pytest.mark.integration

ORDERS = {
    "o-confirmed": {"status": "CONFIRMED", "total_cents": 1_000},
    "o-cancelled": {"status": "CANCELLED", "total_cents": 2_500},
}


async def test_what_two_processes_did_is_read_as_one_ledger(
    mongo_client: AsyncMongoClient[Any], db_name: str
) -> None:
    db = mongo_client[db_name]
    one, other = SandboxProvider(db), SandboxProvider(db)  # two payment replicas
    try:
        for order, cents in (("o-confirmed", 1_000), ("o-cancelled", 2_500)):
            await one.authorize(
                key=f"{order}:1",
                payment_ref=order,
                token="pm_card_ok",
                amount_cents=cents,
                currency="USD",
            )
        (confirmed,) = await other.charges("o-confirmed")
        (cancelled,) = await other.charges("o-cancelled")
        await other.capture(
            key="o-confirmed:capture",
            authorization_id=confirmed.authorization_id,
            amount_cents=1_000,
        )
        await other.void(key="o-cancelled:void", authorization_id=cancelled.authorization_id)
        entries = await ledger_entries(db)
        assert sorted((e["payment_ref"], e["operation"], e["amount_cents"]) for e in entries) == [
            ("o-cancelled", "authorize", 2_500),
            ("o-cancelled", "void", 2_500),
            ("o-confirmed", "authorize", 1_000),
            ("o-confirmed", "capture", 1_000),
        ]
        audit = audit_entries(entries, ORDERS)
        assert audit["capture_mismatches"] == audit["authorizations_not_voided"] == []
        assert audit["captured_cents"] == audit["confirmed_total_cents"] == 1_000
        # Without the void the audit finds the hold left open.
        held = [e for e in entries if e["operation"] != "void"]
        assert len(audit_entries(held, ORDERS)["authorizations_not_voided"]) == 1
    finally:
        await mongo_client.drop_database(db_name)
