"""Notify and analytics behind the gateway, fed by the real user service, before any order.

The shop of tests/e2e/shop.py with notify and analytics (every service in this process behind
real HTTP servers, on the real broker and Mongo, with a prefix of its own). A customer registers,
completes the profile, logs in and tries an admin route; UserRegistered is then delivered a
second time. The welcome email is in the SMTP sink once, the inbox and the audit trail show the
journey with ip/device/region and the denied call, the funnel counts it, and a Customer gets 403
on reports and audit. The order part of the journey waits for the saga (issue 6).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bus import AmqpPublisher, BusConnection
from bus.runtime import bus_config
from contracts import Envelope
from devkit.bus_testing import Probe, eventually
from devkit.smtp_sink import MailSink

from .shop import ADMIN, MANAGER, PASSWORD, running_shop

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@dataclass
class System:
    client: httpx.AsyncClient
    sink: MailSink
    probe: Probe
    publisher: AmqpPublisher

    async def login(self, identifier: str, password: str = PASSWORD) -> dict[str, str]:
        response = await self.client.post(
            "/api/v1/users/login", json={"identifier": identifier, "password": password}
        )
        assert response.status_code == 200, response.text
        return {"authorization": f"Bearer {response.json()['accessToken']}"}


@pytest.fixture
async def system(mongo_url: str, amqp_url: str, run_prefix: str) -> AsyncIterator[System]:
    async with running_shop(
        mongo_url, amqp_url, run_prefix, with_notify=True, with_analytics=True
    ) as shop:
        assert shop.sink is not None
        config = bus_config(shop.apps["user"].state.settings)
        connection = BusConnection(amqp_url, name=f"{config.prefix}e2e-replay")
        publisher = AmqpPublisher(connection, config)
        try:
            yield System(shop.client, shop.sink, shop.probe, publisher)
        finally:
            await publisher.close()
            await connection.close()


async def test_journey_without_orders_through_the_gateway(system: System) -> None:
    client = system.client
    created = await client.post(
        "/api/v1/users/register",
        json={
            "username": "zoe",
            "email": "zoe@example.com",
            "password": PASSWORD,
            "region": "eu-west",
        },
        headers={"user-agent": UA},
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["userId"]
    me = {"authorization": f"Bearer {created.json()['accessToken']}"}
    details = await client.post(
        "/api/v1/users/me/details",
        json={
            "addresses": [
                {
                    "label": "home",
                    "line1": "1 Main St",
                    "city": "Springfield",
                    "state": "IL",
                    "zip": "62701",
                    "country": "US",
                }
            ],
            "paymentMethods": [{"type": "card", "token": "pm_card_ok"}],
        },
        headers={**me, "user-agent": UA},
    )
    assert details.status_code == 200, details.text
    me = await system.login("zoe")
    denied = await client.get("/api/v1/users", headers={**me, "user-agent": UA})
    assert denied.status_code == 403
    for path in ("/api/v1/reports/sales", "/api/v1/reports/funnel", "/api/v1/audit"):
        assert (await client.get(path, headers=me)).status_code == 403, path

    # The welcome email arrives once, even when UserRegistered is delivered a second time.
    await eventually(lambda: len(system.sink.to("zoe@example.com")) == 1, what="welcome email")

    def registrations() -> list[Any]:
        return [
            m
            for m in system.probe.messages
            if m.type == "UserRegistered" and json.loads(m.body)["data"]["userId"] == user_id
        ]

    await eventually(registrations, what="UserRegistered seen")
    registered = registrations()[0]
    await system.publisher.publish(Envelope.from_json(registered.body))

    inbox = await client.get("/api/v1/notifications", headers=me)
    assert inbox.status_code == 200
    # The profile was complete before the first login: no completion nudge.
    assert sorted((i["type"], i["channel"]) for i in inbox.json()["items"]) == [
        ("WELCOME", "email"),
        ("WELCOME", "inApp"),
    ]

    admin = await system.login(ADMIN[0], ADMIN[1])

    async def trail() -> list[dict[str, Any]]:
        response = await client.get("/api/v1/audit", params={"actorId": user_id}, headers=admin)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def complete() -> bool:
        actions = [i["action"] for i in await trail()]
        expected = {"UserRegistered", "UserProfileUpdated", "UserLoggedIn"}
        return actions.count("AccessDenied") >= 4 and expected <= set(actions)

    await eventually(complete, what="the user's audit trail")
    items = await trail()
    actions = [i["action"] for i in items]
    assert actions[0] == "UserRegistered" and "UserProfileUpdated" in actions
    assert "UserLoggedIn" in actions
    assert actions.index("UserLoggedIn") < actions.index("AccessDenied")
    refused = next(i for i in items if i["action"] == "AccessDenied")
    assert refused["outcome"] == "denied" and refused["entityId"] == "GET /api/v1/users"
    assert refused["actor"]["userId"] == user_id and refused["actor"]["ip"]
    assert "Firefox" in (refused["actor"]["device"] or "")

    manager = await system.login(MANAGER[0], MANAGER[1])
    funnel = await client.get("/api/v1/reports/funnel", headers=manager)
    assert funnel.status_code == 200
    assert funnel.json()["registered"] == 1 and funnel.json()["profileComplete"] == 1
    assert len(system.sink.to("zoe@example.com")) == 1
