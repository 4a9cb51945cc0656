"""`/metrics` on every kit app: request latency by route template and status, scrape hooks."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from kit import metrics

pytestmark = pytest.mark.unit


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample called `name` in a scrape."""
    return [
        (dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def request_count(text: str, **labels: str) -> float:
    return sum(
        value
        for found, value in samples(text, "shop_http_request_duration_seconds_count")
        if labels.items() <= found.items()
    )


async def test_requests_are_timed_by_route_template_and_status(
    client: httpx.AsyncClient,
) -> None:
    before = (await client.get("/metrics")).text
    await client.get("/orders/o-123")  # 401: no token
    await client.get("/orders/o-456")
    await client.get("/state")  # 409 INVALID_STATE
    await client.get("/no/such/path")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text

    def grew(**labels: str) -> float:
        return request_count(after, **labels) - request_count(before, **labels)

    assert grew(service="demo", method="GET", route="/orders/{order_id}", status="401") == 2
    assert grew(service="demo", route="/state", status="409") == 1
    assert grew(service="demo", route="unmatched", status="404") == 1
    # Raw paths never become labels, and the scrape does not time itself.
    assert "o-123" not in after
    assert grew(route="/metrics") == 0


async def test_metrics_route_is_not_in_the_openapi_document(app: FastAPI) -> None:
    assert "/metrics" not in app.openapi()["paths"]


async def test_scrape_hooks_set_gauges_and_a_failing_one_is_skipped(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    depth = metrics.gauge("shop_test_depth", "A sampled depth.", ["service"])
    reads: list[int] = []

    async def sample() -> None:
        reads.append(1)
        depth.labels(service="demo").set(len(reads) * 10)

    async def broken() -> None:
        raise RuntimeError("the broker is away")

    metrics.add_scrape_hook(app, "depth", sample)
    metrics.add_scrape_hook(app, "broken", broken)
    text = (await client.get("/metrics")).text
    assert samples(text, "shop_test_depth") == [({"service": "demo"}, 10.0)]
    metrics.remove_scrape_hook(app, "depth")
    await client.get("/metrics")
    assert reads == [1]


def test_constructors_are_idempotent_and_refuse_another_kind() -> None:
    first = metrics.counter("shop_test_things_total", "Things.", ["service"])
    assert metrics.counter("shop_test_things_total", "Things.", ["service"]) is first
    first.labels(service="demo").inc()
    hist = metrics.histogram("shop_test_step_seconds", "Steps.", ["service", "step"])
    assert metrics.histogram("shop_test_step_seconds", "Steps.") is hist
    with pytest.raises(ValueError, match="already exists"):
        metrics.gauge("shop_test_things_total", "Things.")
