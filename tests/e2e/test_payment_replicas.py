"""Two payment processes, one killed while orders are paid: the other captures and voids the holds
the dead one made (issue 21 item 3; the k8s base runs 2 payment replicas).

The runner (`make run`, `SHOP_REPLICAS=payment=2`, no restarts) starts the gateway, user,
inventory, order and two payment instances on one embedded Mongo. Every order
waits for a Manager's approval (its total is above `APPROVAL_THRESHOLD_CENTS`), so all are
reserved before anything is paid. Inventory is then paused (SIGSTOP: its OrderPaid deliveries
wait), the Manager approves every order, and as soon as the second payment process has made
holds it is SIGKILLed, with other payments still in flight (their deliveries go back to the queue
and to the survivor, which asks the processor again under the same keys). Once every order is
PAID, an Admin cancels half of them (both halves hold some of the dead process's holds) and
inventory resumes: the other half is CONFIRMED. The processor's ledger (`sandbox_ledger` in
payment's database) must then show one authorization per order, a capture of the order's total
for each CONFIRMED one and a void for each CANCELLED one, those of the dead process's holds made
by the survivor; and no process logged `unknown authorization` (what a per-process ledger gave).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from payment_service.provider import SANDBOX_LEDGER
from pymongo import AsyncMongoClient

from bus import BusConfig, BusConnection
from devkit.bus_testing import Probe, eventually

from .shop import ADMIN, MANAGER, Shop
from .test_local_run import Runner, delete_broker_state, kill_tree, started_pids

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from runner.config import free_port_block  # noqa: E402

THRESHOLD_CENTS = 1_500
PRICE_CENTS = 2_000  # above the threshold: every order waits for a Manager
ORDERS = 10
READY_TIMEOUT = 90.0


async def statuses(
    client: httpx.AsyncClient, admin: dict[str, str], orders: list[str]
) -> dict[str, str]:
    found: dict[str, str] = {}
    for order in orders:
        response = await client.get(f"/api/v1/orders/{order}", headers=admin)
        assert response.status_code == 200, response.text
        found[order] = response.json()["status"]
    return found


async def reach(
    client: httpx.AsyncClient, admin: dict[str, str], wanted: dict[str, str], timeout: float
) -> None:
    """Wait until each order has its wanted status; fail with those that have not."""
    deadline = time.monotonic() + timeout
    while (seen := await statuses(client, admin, list(wanted))) != wanted:
        if time.monotonic() > deadline:
            off = {o: f"{seen[o]}, not {wanted[o]}" for o in wanted if seen[o] != wanted[o]}
            raise AssertionError(f"after {timeout:g}s: {off}")
        await asyncio.sleep(0.2)


def pid_of(caller: str) -> int:
    """The process in a ledger `caller` (host/pid)."""
    return int(caller.rsplit("/", 1)[1])


@contextlib.asynccontextmanager
async def shop_with_two_payments(
    tmp_path: Path, amqp_url: str, prefix: str, db_prefix: str
) -> AsyncIterator[Runner]:
    base = free_port_block()
    env = {k: v for k, v in os.environ.items() if k != "MONGO_URL"}
    env.update(
        SHOP_PORT_BASE=str(base),
        SHOP_MONGO_PORT="0",
        # One embedded server for all: three fewer processes to start on a busy machine.
        SHOP_MONGO_PER_SERVICE="0",
        SHOP_RUN_DIR=str(tmp_path / "run"),
        SHOP_REPLICAS="payment=2",
        SHOP_SEED_CATALOG="0",
        AMQP_URL=amqp_url,
        BUS_PREFIX=prefix,
        DB_PREFIX=db_prefix,
        NO_COLOR="1",
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="WARNING",
        SHOP_ADMIN_EMAIL=ADMIN[0],
        SHOP_ADMIN_PASSWORD=ADMIN[1],
        SHOP_MANAGER_EMAIL=MANAGER[0],
        SHOP_MANAGER_PASSWORD=MANAGER[1],
        APPROVAL_THRESHOLD_CENTS=str(THRESHOLD_CENTS),
        # Each provider call takes a while, so the kill lands with payments in flight.
        PAYMENT_PROVIDER_LATENCY_SECONDS="0.3",
    )
    argv = [
        sys.executable,
        "scripts/run_local.py",
        "--only",
        "gateway,user,inventory,order,payment",
        "--no-restart",
        "--ready-timeout",
        str(READY_TIMEOUT),
    ]
    process = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    runner = Runner(process, base)
    try:
        await asyncio.to_thread(runner.wait_for, "ready in", READY_TIMEOUT + 10)
        yield runner
    finally:
        # Killed, not stopped: a clean stop is test_local_run's business, and takes seconds.
        if process.poll() is None:
            kill_tree(process)
        await asyncio.to_thread(runner.drain)
        await asyncio.to_thread(delete_broker_state, amqp_url, prefix)


def ledger_url(lines: list[str]) -> str:
    """The embedded Mongo, from the runner's `embedded Mongo ready at <url>`."""
    for line in lines:
        if "embedded Mongo ready at " in line:
            return line.split("ready at ", 1)[1].split(" ", 1)[0]
    raise AssertionError("the runner did not say where payment's Mongo is")


async def test_the_surviving_replica_captures_and_voids_the_killed_ones_holds(
    tmp_path: Path, amqp_url: str
) -> None:
    prefix, db_prefix = f"e2e{secrets.token_hex(3)}.", f"e2e{secrets.token_hex(3)}_"
    t0 = time.monotonic()
    connection = BusConnection(amqp_url, name=f"{prefix}e2e-probe")
    async with (
        shop_with_two_payments(tmp_path, amqp_url, prefix, db_prefix) as runner,
        httpx.AsyncClient(base_url=runner.url, timeout=20) as client,
    ):
        ready = time.monotonic() - t0
        pids = started_pids(runner.lines)
        killed, survivor, inventory = pids["payment-2"], pids["payment"], pids["inventory"]
        mongo: AsyncMongoClient[Any] = AsyncMongoClient(ledger_url(runner.lines))
        ledger = mongo[f"{db_prefix}payment"][SANDBOX_LEDGER]
        config = BusConfig(service="e2e", prefix=prefix)
        shop = Shop(
            client=client, probe=await Probe.bind(await connection.channel(), config, "#"), apps={}
        )
        try:
            admin = shop.admin = await shop.login(*ADMIN)
            manager = await shop.login(*MANAGER)
            product_id = await shop.product(stock=100, price_cents=PRICE_CENTS)
            # Two customers: ten orders each within the hour stay below the fraud rules' velocity.
            customers = [await shop.customer("pm_card_ok") for _ in range(2)]
            lines = (product_id, 1)
            orders = list(
                await asyncio.gather(
                    *(shop.order_of(customers[n % 2], lines) for n in range(ORDERS))
                )
            )
            await reach(client, admin, dict.fromkeys(orders, "AWAITING_APPROVAL"), 30)

            # Inventory paused: what is paid waits for its commit, so nothing is captured yet.
            os.kill(inventory, signal.SIGSTOP)
            try:
                approvals = [
                    client.post(
                        f"/api/v1/orders/{order}/approve",
                        json={"reason": "known customer"},
                        headers=manager,
                    )
                    for order in orders
                ]
                for answer in await asyncio.gather(*approvals):
                    assert answer.status_code == 200, answer.text

                async def killed_made_holds() -> bool:
                    holds = ledger.find({"outcome": "authorized"}, {"caller": 1})
                    return sum([pid_of(d["caller"]) == killed async for d in holds]) >= 2

                await eventually(killed_made_holds, timeout=20, what="payment-2 made 2 holds")
                in_flight = await ledger.count_documents({"outcome": "authorized"})
                os.kill(killed, signal.SIGKILL)  # as the OOM killer or a lost node would
                await reach(client, admin, dict.fromkeys(orders, "PAID"), 40)

                held_by: dict[str, int] = {}
                async for doc in ledger.find({"outcome": "authorized"}):
                    assert doc["payment_ref"] not in held_by, f"two holds for {doc}"
                    held_by[doc["payment_ref"]] = pid_of(doc["caller"])
                assert set(held_by) == set(orders)
                # Each half holds some of the dead process's holds and some of the survivor's.
                by_killed = sorted(o for o in orders if held_by[o] == killed)
                by_survivor = sorted(o for o in orders if held_by[o] != killed)
                to_cancel = set(by_killed[::2] + by_survivor[::2])
                for order in to_cancel:
                    cancelled = await client.post(f"/api/v1/orders/{order}/cancel", headers=admin)
                    assert cancelled.status_code == 200, cancelled.text
            finally:
                os.kill(inventory, signal.SIGCONT)

            ends = {o: "CANCELLED" if o in to_cancel else "CONFIRMED" for o in orders}
            await reach(client, admin, ends, 40)

            async def all_settled() -> bool:
                query = {"outcome": "authorized", "settled": {"$ne": None}}
                return await ledger.count_documents(query) == len(orders)

            await eventually(all_settled, timeout=20, what="every hold captured or voided")
            async for doc in ledger.find({"outcome": "authorized"}):
                order, settled = doc["payment_ref"], doc["settled"]
                expected = "void" if ends[order] == "CANCELLED" else "capture"
                assert settled["operation"] == expected, (order, ends[order], settled)
                if expected == "capture":
                    assert settled["amount_cents"] == PRICE_CENTS
                # Whoever made the hold, the survivor settled it: the dead process's included.
                assert pid_of(settled["caller"]) == survivor, (order, doc["caller"], settled)
            assert by_killed and set(by_killed) & to_cancel and set(by_killed) - to_cancel
            # What an Admin sees of each payment (api.md's lookup) agrees.
            for order in orders:
                looked_up = await client.get(f"/api/v1/payments/{order}", headers=admin)
                assert looked_up.status_code == 200, looked_up.text
                payment = looked_up.json()
                if ends[order] == "CONFIRMED":
                    assert (payment["status"], payment["capturedCents"]) == (
                        "captured",
                        PRICE_CENTS,
                    )
                else:
                    assert payment["status"] == "voided", payment

            # The bus carries one capture of the total per CONFIRMED order, one void per
            # CANCELLED one (each once: a copy re-published has its original's id).
            def settled_on_the_bus() -> bool:
                captured = {e["data"]["orderId"] for e in shop.distinct("PaymentCaptured")}
                voided = {e["data"]["orderId"] for e in shop.distinct("PaymentVoided")}
                return captured == set(orders) - to_cancel and voided == to_cancel

            await eventually(settled_on_the_bus, timeout=15, what="PaymentCaptured/Voided")
            assert len(shop.distinct("PaymentCaptured")) == len(set(orders) - to_cancel)
            assert len(shop.distinct("PaymentVoided")) == len(to_cancel)
            assert {e["data"]["amountCents"] for e in shop.distinct("PaymentCaptured")} == {
                PRICE_CENTS
            }
        finally:
            await mongo.close()
            await connection.close()
    output = "\n".join(runner.lines)
    assert "unknown authorization" not in output
    # With -s: what this run measured (the start-up dominates on a loaded machine).
    print(
        f"ready after {ready:.1f}s, done after {time.monotonic() - t0:.1f}s;"
        f" payment-2 killed once {in_flight} of {len(orders)} holds were made"
    )
