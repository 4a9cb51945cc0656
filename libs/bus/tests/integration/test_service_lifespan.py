"""The shared service lifespan against a real MongoDB-protocol server (the bus is a fake)."""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from bus.fake import NullBus
from bus.runtime import ServiceDeps, service_lifespan
from kit.health import readiness
from kit.mongo import IndexSpec
from kit.settings import ServiceSettings

pytestmark = pytest.mark.integration


class DemoSettings(ServiceSettings):
    service_name: ClassVar[str] = "demo"


INDEXES = [IndexSpec("things", "key", unique=True, name="key_unique")]


async def test_lifespan_connects_indexes_starts_the_bus_and_stops_it(mongo_url: str) -> None:
    settings = DemoSettings(mongo_url=mongo_url, db_prefix=f"t{secrets.token_hex(4)}_")
    bus = NullBus()

    def bootstrap(s: DemoSettings) -> ServiceDeps:
        return ServiceDeps.wire(s, {}, bus=bus)

    app = FastAPI(lifespan=service_lifespan(settings, bootstrap, indexes=INDEXES))
    async with app.router.lifespan_context(app):
        deps: ServiceDeps = app.state.deps
        assert deps.db.name == f"{settings.db_prefix}demo"
        assert bus.started
        ready, checks = await readiness(app)
        assert ready and checks == {"mongo": True, "broker": True}
        names = [ix["name"] async for ix in await deps.db["things"].list_indexes()]
        assert "key_unique" in names
        await deps.mongo.drop_database(deps.db.name)
    assert bus.stopped


async def test_readiness_reports_a_bus_that_is_not_ready(mongo_url: str) -> None:
    settings = DemoSettings(mongo_url=mongo_url)
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
    app = FastAPI(
        lifespan=service_lifespan(
            settings,
            lambda s: ServiceDeps.wire(s, {}, mongo=client, bus=NullBus(ready=False)),
            indexes=[],
        )
    )
    async with app.router.lifespan_context(app):
        ready, checks = await readiness(app)
    assert not ready
    assert checks == {"mongo": True, "broker": False}


async def test_service_steps_and_loops_run_in_order_and_stop_before_the_bus(mongo_url: str) -> None:
    settings = DemoSettings(mongo_url=mongo_url, db_prefix=f"t{secrets.token_hex(4)}_")
    steps: list[str] = []

    class RecordingBus(NullBus):
        async def stop(self) -> None:
            steps.append("bus stopped")
            await super().stop()

    class Loop:
        def __init__(self, name: str) -> None:
            self.name = name

        def start(self) -> None:
            steps.append(f"{self.name} started")

        async def stop(self) -> None:
            steps.append(f"{self.name} stopped")

    class Deps(ServiceDeps):
        async def close(self) -> None:
            steps.append("deps closed")

    async def seed(app: FastAPI, deps: Deps) -> None:
        steps.append("seeded")

    def loops(deps: Deps) -> dict[str, Loop]:
        return {"sweeper": Loop("sweeper"), "worker": Loop("worker")}

    app = FastAPI(
        lifespan=service_lifespan(
            settings,
            lambda s: Deps.wire(s, {}, bus=RecordingBus()),
            indexes=[],
            on_started=seed,
            background=loops,
        )
    )
    async with app.router.lifespan_context(app):
        assert app.state.sweeper.name == "sweeper" and app.state.worker.name == "worker"
        await app.state.deps.mongo.drop_database(app.state.deps.db.name)
    assert steps == [
        "seeded",
        "sweeper started",
        "worker started",
        "worker stopped",
        "sweeper stopped",
        "bus stopped",
        "deps closed",
    ]


async def test_serial_transactions_are_the_settings_choice_while_the_app_runs(
    mongo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MONGO_SERIAL_TRANSACTIONS=1 (a setting, not an environment read of kit.transactions):
    on while the app runs, the process's own choice again once it stopped; unset, untouched."""
    from kit import transactions

    monkeypatch.setattr(transactions, "_SERIAL", False)
    monkeypatch.setenv("MONGO_SERIAL_TRANSACTIONS", "1")
    serial = DemoSettings(mongo_url=mongo_url)
    assert serial.mongo_serial_transactions
    seen: list[bool] = []

    def bootstrap(s: DemoSettings) -> ServiceDeps:
        return ServiceDeps.wire(s, {}, bus=NullBus())

    app = FastAPI(lifespan=service_lifespan(serial, bootstrap, indexes=[]))
    async with app.router.lifespan_context(app):
        seen.append(transactions._SERIAL)
    assert seen == [True] and transactions._SERIAL is False

    monkeypatch.delenv("MONGO_SERIAL_TRANSACTIONS")
    transactions.configure(serial=True)  # a process-wide choice (a test fixture's, say)
    plain = DemoSettings(mongo_url=mongo_url)
    app = FastAPI(lifespan=service_lifespan(plain, bootstrap, indexes=[]))
    async with app.router.lifespan_context(app):
        seen.append(transactions._SERIAL)
    assert seen == [True, True] and transactions._SERIAL is True
