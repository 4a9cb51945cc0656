"""A consumed event shows up in the service's `/metrics`, with the DLQ depth and outbox gauges.

One service built as every service is (kit's app factory, the shared lifespan, a real
`ServiceBus` on the broker and Mongo): an event handled and answered, one dead-lettered, then
one scrape.
"""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from pymongo import AsyncMongoClient

from bus import BusConnection, HandlerContext, delete_topology
from bus.runtime import ServiceDeps, bus_config, service_lifespan
from bus.service import ServiceBus
from contracts import Envelope, Event
from contracts.registry import event
from devkit.bus_testing import eventually
from kit.app import create_app
from kit.settings import ServiceSettings

pytestmark = pytest.mark.integration


@event("test")
class MetricsPing(Event):
    key: str


@event("test")
class MetricsPong(Event):
    key: str


@event("test")
class MetricsPoison(Event):
    key: str


class MeteredSettings(ServiceSettings):
    service_name: ClassVar[str] = f"metered{secrets.token_hex(3)}"


async def answer_ping(envelope: Envelope[MetricsPing], ctx: HandlerContext) -> None:
    await ctx.emit(MetricsPong(key=envelope.data.key))


async def refuse_poison(envelope: Envelope[MetricsPoison], ctx: HandlerContext) -> None:
    raise RuntimeError("never works")


HANDLERS: Any = {MetricsPing: [answer_ping], MetricsPoison: [refuse_poison]}


def samples(text: str, name: str, **labels: str) -> list[Sample]:
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= dict(sample.labels).items()
    ]


def value(text: str, name: str, **labels: str) -> float:
    return sum(sample.value for sample in samples(text, name, **labels))


async def test_a_consumed_event_and_a_dead_letter_show_up_in_metrics(
    mongo_url: str, amqp_url: str, run_prefix: str
) -> None:
    settings = MeteredSettings(
        env="test",
        mongo_url=mongo_url,
        amqp_url=amqp_url,
        bus_prefix=run_prefix,
        db_prefix=f"t{secrets.token_hex(4)}_",
        bus_retry_delays=(0.2,),
        bus_max_attempts=1,
        log_level="WARNING",
    )
    service = settings.service_name

    def bootstrap(s: MeteredSettings) -> ServiceDeps:
        return ServiceDeps.wire(s, HANDLERS)

    app = create_app(
        settings, title=service, lifespan=service_lifespan(settings, bootstrap, indexes=[])
    )
    try:
        async with app.router.lifespan_context(app):
            deps: ServiceDeps = app.state.deps
            assert isinstance(deps.bus, ServiceBus)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://m") as client:

                async def scrape() -> str:
                    response = await client.get("/metrics")
                    assert response.status_code == 200
                    return response.text

                await deps.bus.publisher.publish(
                    Envelope.wrap(MetricsPing(key="k1"), correlation_id="c1")
                )
                await deps.bus.publisher.publish(
                    Envelope.wrap(MetricsPoison(key="k2"), correlation_id="c2")
                )

                seen: list[str] = []

                async def counted() -> bool:
                    text = await scrape()
                    return (
                        value(
                            text, "shop_events_published_total", service=service, type="MetricsPong"
                        )
                        == 1
                        and value(text, "shop_dlq_depth", service=service) == 1
                    )

                async def drained() -> bool:
                    # A scrape reads the outbox first and the counters last, and the counter
                    # moves at the confirm, before the row is marked sent: a scrape begun around
                    # then shows the pong published and still pending, or not yet written.
                    seen.append(await scrape())
                    return (
                        value(seen[-1], "shop_outbox_pending", service=service) == 0
                        and value(seen[-1], "shop_outbox_lag_seconds", service=service) == 0
                    )

                await eventually(counted, what="the pong published and the poison dead-lettered")
                await eventually(drained, what="the outbox drained")
                text = seen[-1]
        assert (
            value(
                text,
                "shop_events_consumed_total",
                service=service,
                type="MetricsPing",
                outcome="ok",
            )
            == 1
        )
        assert (
            value(
                text,
                "shop_events_consumed_total",
                service=service,
                type="MetricsPoison",
                outcome="dead_lettered",
            )
            == 1
        )
        assert (
            value(text, "shop_handler_failures_total", service=service, type="MetricsPoison") == 1
        )
        assert value(text, "shop_events_dead_lettered_total", service=service) == 1
        assert value(text, "shop_event_handler_duration_seconds_count", service=service) == 1
        assert value(text, "shop_outbox_pending", service=service) == 0
        # the consumer's backlog is sampled too: one sample, drained by now
        assert [s.value for s in samples(text, "shop_queue_depth", service=service)] == [0]
        assert value(text, "shop_outbox_lag_seconds", service=service) == 0
    finally:
        mongo: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
        await mongo.drop_database(settings.database_name)
        await mongo.close()
        connection = BusConnection(amqp_url, name=f"{run_prefix}metrics-cleanup")
        try:
            await delete_topology(await connection.channel(), bus_config(settings))
        finally:
            await connection.close()
