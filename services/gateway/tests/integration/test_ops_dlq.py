"""The operations API on a real broker: listing and redriving dead letters, audited, Admin only."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import httpx
import pytest
from fastapi import FastAPI
from gateway_service.main import create_app
from gateway_service.routing import SERVICES
from gateway_service.settings import GatewaySettings

from bus import BusConfig, BusConnection, Names, declare_topology, delete_topology
from bus.dlq import dead_letter_count, list_dead_letters
from bus.retry import Failure, dead_letter_headers
from contracts import Envelope
from contracts.gateway import AccessDenied, DeadLettersRedriven
from devkit.bus_testing import Probe, eventually
from devkit.gateway_testing import serving
from kit.auth.deps import use_static_keys
from kit.auth.signing import SigningKey, issue_access_token

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

DLQ = "/api/v1/ops/dlq"
SERVICE = "order"  # the service whose topology the tests declare; the others have none
DEAD = "http://127.0.0.1:9"  # no upstream is needed: ops never leaves the gateway


@dataclass
class Ops:
    client: httpx.AsyncClient
    app: FastAPI
    key: SigningKey
    config: BusConfig
    channel: aio_pika.abc.AbstractChannel
    probe: Probe

    def token(self, role: str, user_id: str | None = None) -> dict[str, str]:
        token = issue_access_token(
            self.key, user_id or f"{role.lower()}-1", role, "shop-user", "shop"
        )
        return {"authorization": f"Bearer {token}", "x-region": "eu-west"}

    def events(self, type_: str) -> list[dict[str, Any]]:
        return [json.loads(m.body) for m in self.probe.messages if m.type == type_]

    async def dead_letter(self, error: str, attempts: int = 3) -> Envelope[AccessDenied]:
        """Put one message in the service's DLQ, as the consumer leaves it after its attempts."""
        envelope = Envelope.wrap(AccessDenied(method="GET", path=f"/{error}"), correlation_id="c-1")
        failure = Failure(
            error=ValueError(error),
            attempt=attempts,
            routing_key=envelope.routing_key,
            handler="order_service.handlers.on_denied",
            service=SERVICE,
        )
        message = aio_pika.Message(
            envelope.to_json(),
            content_type="application/json",
            message_id=envelope.id,
            type=envelope.type,
            correlation_id=envelope.correlation_id,
            headers=dead_letter_headers({}, failure, 1000),
        )
        await self.channel.default_exchange.publish(message, routing_key=Names.of(self.config).dlq)
        return envelope


@asynccontextmanager
async def running_ops(
    amqp_url: str, run_prefix: str, *, gateway_amqp_url: str | None = None, **settings: Any
) -> AsyncIterator[Ops]:
    """The gateway (talking to the broker at `gateway_amqp_url`) and a test channel to it."""
    # A prefix of its own: the six services' DLQs here are never another test's.
    prefix = f"{run_prefix}ops{secrets.token_hex(3)}."
    config = BusConfig(service=SERVICE, amqp_url=amqp_url, prefix=prefix)
    connection = BusConnection(amqp_url, name="test-ops-dlq")
    channel = await connection.channel()
    await declare_topology(channel, config, ["order.#"])
    probe = await Probe.bind(
        await connection.channel(), config, DeadLettersRedriven.ROUTING_KEY, "access.denied"
    )
    key = SigningKey.generate()
    gateway_settings = GatewaySettings(
        env="test",
        port=0,
        amqp_url=gateway_amqp_url or amqp_url,
        bus_prefix=prefix,
        **{f"{name}_url": DEAD for name in SERVICES},
        **settings,
    )
    app = create_app(gateway_settings)
    use_static_keys(app, key)
    try:
        async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=15) as client:
            yield Ops(client, app, key, config, channel, probe)
    finally:
        await delete_topology(channel, config, exchanges=True)
        await connection.close()


@pytest.fixture
async def ops(amqp_url: str, run_prefix: str) -> AsyncIterator[Ops]:
    async with running_ops(amqp_url, run_prefix) as running:
        yield running


async def test_admin_lists_dead_letters_with_their_errors(ops: Ops) -> None:
    first = await ops.dead_letter("stock service exploded")
    await ops.dead_letter("again", attempts=1)

    response = await ops.client.get(DLQ, headers=ops.token("Admin"))
    assert response.status_code == 200, response.text
    items = {item["service"]: item for item in response.json()["items"]}
    assert list(items) == list(SERVICES)
    assert all(items[s] == {"service": s, "count": 0, "messages": []} for s in SERVICES[:2])
    order = items[SERVICE]
    assert order["count"] == 2 == len(order["messages"])
    letter = order["messages"][0]
    assert letter == {
        "id": first.id,
        "type": "AccessDenied",
        "routingKey": "access.denied",
        "error": "ValueError: stock service exploded",
        "errorType": "ValueError",
        "attempts": 3,
        "failedAt": letter["failedAt"],
        "handler": "order_service.handlers.on_denied",
        "correlationId": "c-1",
    }
    assert letter["failedAt"]
    assert order["messages"][1]["attempts"] == 1

    # the filter and the limit: `count` stays the whole DLQ, listing leaves it in place
    one = await ops.client.get(
        DLQ, params={"service": SERVICE, "limit": 1}, headers=ops.token("Admin")
    )
    assert one.status_code == 200
    (only,) = one.json()["items"]
    assert only["count"] == 2 and [m["id"] for m in only["messages"]] == [first.id]
    assert await dead_letter_count(ops.channel, ops.config) == 2


async def test_redrive_moves_them_back_and_is_audited_first(ops: Ops) -> None:
    letters = [await ops.dead_letter(f"boom {i}") for i in range(3)]

    response = await ops.client.post(
        f"{DLQ}/{SERVICE}/redrive", headers=ops.token("Admin", "admin-7")
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"service": SERVICE, "redriven": 3}
    assert await dead_letter_count(ops.channel, ops.config) == 0

    queue = await ops.channel.get_queue(Names.of(ops.config).queue, ensure=False)
    back = [await queue.get(no_ack=True, timeout=5) for _ in letters]
    assert [m.message_id for m in back] == [e.id for e in letters]
    assert all("x-error" not in (m.headers or {}) for m in back)  # a fresh start

    # the audit record was confirmed before the answer: it is already on its way
    await eventually(lambda: len(ops.events("DeadLettersRedriven")) == 1, what="the audit event")
    (audit,) = ops.events("DeadLettersRedriven")
    assert audit["source"] == "gateway"
    assert audit["data"] == {"service": SERVICE, "count": 3}
    assert audit["actor"]["userId"] == "admin-7"
    assert audit["actor"]["role"] == "Admin"
    assert audit["actor"]["region"] == "eu-west"

    # nothing left: a second redrive moves nothing (and is audited as such)
    again = await ops.client.post(f"{DLQ}/{SERVICE}/redrive", headers=ops.token("Admin"))
    assert again.json() == {"service": SERVICE, "redriven": 0}


async def test_no_audit_no_redrive(ops: Ops) -> None:
    await ops.dead_letter("stays")

    async def broker_refuses(envelope: Envelope[Any]) -> None:
        raise TimeoutError("no confirm")

    ops.app.state.audit.record = broker_refuses
    response = await ops.client.post(f"{DLQ}/{SERVICE}/redrive", headers=ops.token("Admin"))
    assert response.status_code == 503
    assert response.json()["code"] == "AUDIT_UNAVAILABLE"
    assert await dead_letter_count(ops.channel, ops.config) == 1


async def test_customers_and_managers_are_refused_and_audited(ops: Ops) -> None:
    calls = [("GET", DLQ), ("POST", f"{DLQ}/{SERVICE}/redrive")]
    await ops.dead_letter("untouched")
    for role in ("Customer", "Manager"):
        for method, path in calls:
            response = await ops.client.request(method, path, headers=ops.token(role))
            assert response.status_code == 403, (role, method)
            assert response.json()["code"] == "FORBIDDEN"
    expected = 2 * len(calls)
    await eventually(lambda: len(ops.events("AccessDenied")) >= expected, what="AccessDenied")
    denied = ops.events("AccessDenied")
    assert len(denied) == expected  # once each: the edge's table answers before the route
    assert {(e["actor"]["role"], e["data"]["method"]) for e in denied} == {
        (role, method) for role in ("Customer", "Manager") for method, _ in calls
    }
    assert all(e["data"]["requiredRoles"] == ["Admin"] for e in denied)
    assert await dead_letter_count(ops.channel, ops.config) == 1
    assert not ops.events("DeadLettersRedriven")


async def test_no_token_bad_service_and_bad_limit(ops: Ops) -> None:
    for method, path in [("GET", DLQ), ("POST", f"{DLQ}/{SERVICE}/redrive")]:
        response = await ops.client.request(method, path)
        assert response.status_code == 401
        assert response.json()["code"] == "UNAUTHENTICATED"
    admin = ops.token("Admin")
    for method, path in [("POST", f"{DLQ}/nope/redrive"), ("GET", f"{DLQ}?service=gateway")]:
        response = await ops.client.request(method, path, headers=admin)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "SERVICE_NOT_FOUND"
    for limit in (101, 0):
        response = await ops.client.get(DLQ, params={"limit": limit}, headers=admin)
        assert response.status_code == 422
        assert response.json()["code"] == "VALIDATION_ERROR"
    assert not ops.events("DeadLettersRedriven")


async def test_openapi_documents_the_ops_routes(ops: Ops) -> None:
    paths = (await ops.client.get("/openapi.json")).json()["paths"]
    assert set(paths[DLQ]) == {"get"}
    assert set(paths[f"{DLQ}/{{service}}/redrive"]) == {"post"}
    assert {"limit", "service"} <= {p["name"] for p in paths[DLQ]["get"]["parameters"]}


class StallingLink:
    """A TCP hop to the broker that stops passing the broker's frames back once the client
    publishes to `trigger` (a queue name): from the client's side, a broker that took the
    publish and never confirms it. `resume()` lets everything through again."""

    def __init__(self, broker: tuple[str, int], trigger: bytes) -> None:
        self.broker = broker
        self.trigger = trigger
        self.open = asyncio.Event()
        self.open.set()
        self.stalled = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def resume(self) -> None:
        self.open.set()

    async def stop(self) -> None:
        self.resume()
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _link(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        broker_in, broker_out = await asyncio.open_connection(*self.broker)
        for pump in (
            self._to_broker(client_in, broker_out),
            self._to_client(broker_in, client_out),
        ):
            task = asyncio.create_task(pump)
            self._tasks.add(task)

    async def _to_broker(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        tail = b""
        while chunk := await source.read(65536):
            if self.trigger in tail + chunk and not self.stalled.is_set():
                self.stalled.set()
                self.open.clear()  # before the publish leaves: its confirm is held back
            tail = chunk[-len(self.trigger) :]
            sink.write(chunk)
            await sink.drain()
        sink.close()

    async def _to_client(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while chunk := await source.read(65536):
            await self.open.wait()
            sink.write(chunk)
            await sink.drain()
        sink.close()


async def test_a_broker_that_stops_confirming_fails_the_redrive_and_keeps_the_letter(
    amqp_url: str, run_prefix: str
) -> None:
    broker = urlsplit(amqp_url)
    link = StallingLink(
        (broker.hostname or "127.0.0.1", broker.port or 5672),
        trigger=f".{SERVICE}.events".encode(),  # the service queue's name, under any prefix
    )
    port = await link.start()
    stalled_url = urlunsplit(broker._replace(netloc=f"{broker.netloc.rsplit(':', 1)[0]}:{port}"))
    try:
        async with running_ops(
            amqp_url, run_prefix, gateway_amqp_url=stalled_url, bus_publish_timeout=0.5
        ) as ops:
            letter = await ops.dead_letter("waits")
            started = time.monotonic()
            try:
                response = await ops.client.post(
                    f"{DLQ}/{SERVICE}/redrive", headers=ops.token("Admin")
                )
            finally:
                link.resume()
            elapsed = time.monotonic() - started
            assert link.stalled.is_set()  # the copy was sent and its confirm never came
            assert response.status_code == 503, response.text
            assert response.json()["code"] == "SERVICE_UNAVAILABLE"
            assert int(response.headers["retry-after"]) > 0
            assert elapsed < 5
            # Not moved: the dead letter is still there for the next redrive.
            await eventually(
                lambda: _dlq_holds(ops, letter.id), what="the dead letter back in the DLQ"
            )
    finally:
        await link.stop()


async def _dlq_holds(ops: Ops, message_id: str) -> bool:
    letters = await list_dead_letters(ops.channel, ops.config)
    return [letter.id for letter in letters] == [message_id]
