"""The fault suite's verdict and its audit of the processor's ledger, on made-up reports and
ledgers (no shop): what makes a run fail (reading the ledger: test_ledger_reading.py)."""

from __future__ import annotations

from typing import Any

import pytest

from .suite import (
    BRANCH_OUTCOMES,
    BRANCHES,
    FIGURES,
    LOAD,
    MUST_BE_ZERO,
    audit_entries,
    off_branch,
    verdict,
)

pytestmark = pytest.mark.unit


def entry(operation: str, order: str, auth: str, cents: int) -> dict[str, Any]:
    return {
        "operation": operation,
        "key": f"{order}:{operation}:{cents}",
        "payment_ref": order,
        "amount_cents": cents,
        "authorization_id": auth,
        "token": "pm_card_ok" if operation == "authorize" else "",
    }


ORDERS = {
    "o-confirmed": {"status": "CONFIRMED", "total_cents": 1_000},
    "o-cancelled": {"status": "CANCELLED", "total_cents": 2_500},
    "o-rejected": {"status": "REJECTED", "total_cents": 700},
}
CLEAN = [
    entry("authorize", "o-confirmed", "a1", 1_000),
    entry("capture", "o-confirmed", "a1", 1_000),
    entry("refund", "o-confirmed", "a1", 400),
    entry("authorize", "o-cancelled", "a2", 2_500),
    entry("void", "o-cancelled", "a2", 2_500),
]


def test_a_clean_ledger_has_no_problem() -> None:
    audit = audit_entries(CLEAN, ORDERS)
    assert audit["capture_mismatches"] == []
    assert audit["authorizations_not_voided"] == []
    assert audit["refunds_above_capture"] == []
    assert audit["captured_cents"] == audit["confirmed_total_cents"] == 1_000


def test_an_authorization_left_open_on_an_order_that_did_not_confirm_is_found() -> None:
    ledger = [*CLEAN, entry("authorize", "o-rejected", "a3", 700)]
    assert [
        p.split(":")[0] for p in audit_entries(ledger, ORDERS)["authorizations_not_voided"]
    ] == ["o-rejected"]
    # A second authorization of a CONFIRMED order, neither captured nor voided, too.
    ledger = [*CLEAN, entry("authorize", "o-confirmed", "a4", 1_000)]
    assert len(audit_entries(ledger, ORDERS)["authorizations_not_voided"]) == 1


def test_captures_must_equal_the_confirmed_totals() -> None:
    short = [
        e if e["operation"] != "capture" else entry("capture", "o-confirmed", "a1", 900)
        for e in CLEAN
    ]
    assert len(audit_entries(short, ORDERS)["capture_mismatches"]) == 1
    missing = [e for e in CLEAN if e["operation"] != "capture"]
    assert len(audit_entries(missing, ORDERS)["capture_mismatches"]) == 1
    # Captured for an order that was cancelled: a mismatch (and its void is missing).
    stray = [*CLEAN, entry("capture", "o-cancelled", "a2", 2_500)]
    assert len(audit_entries(stray, ORDERS)["capture_mismatches"]) == 1


def test_a_refund_above_its_capture_is_found() -> None:
    ledger = [*CLEAN, entry("refund", "o-confirmed", "a1", 700)]
    assert len(audit_entries(ledger, ORDERS)["refunds_above_capture"]) == 1


def passing_report() -> dict[str, Any]:
    figures: dict[str, Any] = dict.fromkeys(FIGURES, 0)
    figures |= {
        "submitted": 300,
        "terminal": 300,
        "max_in_flight": 210,
        "place_failures": 0,
        "poison_injected": 3,
        "expected_dead_letters": 6,
        "fulfilled": 12,
        "returns_received": 5,
    }
    figures["by_branch"] = {
        branch: dict.fromkeys(outcomes, 10) for branch, outcomes in BRANCH_OUTCOMES.items()
    }
    scenario = {"name": "kill-order", "orders_during": 40, "ok": True, "detail": {}}
    return {"load": dict(LOAD["long"]), "figures": figures, "scenarios": [scenario]}


def test_a_run_that_proves_its_load_and_invariants_passes() -> None:
    assert verdict(passing_report()) == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r: r["figures"].update(submitted=150, terminal=150), "submitted 150 < 200"),
        (lambda r: r["figures"].update(max_in_flight=20), "max_in_flight 20 < 200"),
        (lambda r: r["figures"].update(terminal=299), "terminal 299 != submitted 300"),
        (lambda r: r["figures"].update(place_failures=1), "place_failures = 1"),
        (lambda r: r["figures"].update(expected_dead_letters=0), "no poison message reached"),
        (lambda r: r["figures"].update(authorizations_not_voided=2), "authorizations_not_voided"),
        (lambda r: r["scenarios"][0].update(orders_during=0), "kill-order: 0 orders"),
        (lambda r: r["scenarios"][0].update(ok=False), "kill-order: not ok"),
        (lambda r: r.update(scenarios=[]), "no scenario ran"),
        (lambda r: r.pop("figures"), "no figures"),
        # The happy branch's holds expired before payment (the load outran them).
        (
            lambda r: r["figures"]["by_branch"]["ok"].update({"CANCELLED:COMMIT_FAILED": 89}),
            "ok: 89 ended CANCELLED:COMMIT_FAILED, allowed ['CONFIRMED:']",
        ),
        (
            lambda r: r["figures"]["by_branch"]["declined_retry"].update(
                {"CANCELLED:PAYMENT_FAILED": 2}
            ),
            "declined_retry: 2 ended CANCELLED:PAYMENT_FAILED",
        ),
        (
            lambda r: r["figures"]["by_branch"]["high_value_reject"].update({"CONFIRMED:": 1}),
            "high_value_reject: 1 ended CONFIRMED:",
        ),
        (lambda r: r["figures"]["by_branch"].update(new={"CONFIRMED:": 1}), "new: 1 ended"),
        (lambda r: r["figures"].update(off_branch=3), "off_branch = 3"),
    ],
)
def test_a_run_fails_when(change: Any, reason: str) -> None:
    report = passing_report()
    change(report)
    assert any(reason in problem for problem in verdict(report)), verdict(report)


def test_the_ledger_figures_must_be_zero() -> None:
    for name in ("ledger_capture_mismatches", "authorizations_not_voided"):
        assert name in MUST_BE_ZERO
    assert "ledger_refunds_above_capture" in MUST_BE_ZERO
    assert "poison_not_dead_lettered" in MUST_BE_ZERO


def test_every_branch_the_driver_places_says_where_it_ends() -> None:
    """A branch added to the driver without its outcomes would fail every run: say so here."""
    assert {*BRANCHES, "unavailable_retry"} == set(BRANCH_OUTCOMES)
    assert all(BRANCH_OUTCOMES.values())


def test_an_order_ending_where_its_branch_says_is_not_off_branch() -> None:
    by_branch = {
        "ok": {"CONFIRMED:": 40},
        "partial_ask_refuse": {"CANCELLED:CUSTOMER": 3},
        "fraud_reject": {"REJECTED:FRAUD": 3, "CANCELLED:COMMIT_FAILED": 1},
    }
    assert off_branch(by_branch) == [("fraud_reject", "CANCELLED:COMMIT_FAILED", 1)]
