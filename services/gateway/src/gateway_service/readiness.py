"""The system's readiness as the gateway sees it: every service's own `/readyz`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import httpx

READY = "ready"


async def service_status(client: httpx.AsyncClient, url: str, timeout: float) -> str:
    """`ready`, `not ready` (it answered something else) or `unreachable`."""
    try:
        response = await client.get(url.rstrip("/") + "/readyz", timeout=timeout)
    except httpx.HTTPError:
        return "unreachable"
    return READY if response.status_code == 200 else "not ready"


async def system_status(
    client: httpx.AsyncClient, urls: Mapping[str, str], timeout: float
) -> tuple[bool, dict[str, str]]:
    """(all ready, {service: status}), the gateway itself included (it answers, so it is ready)."""
    names = list(urls)
    statuses = await asyncio.gather(*(service_status(client, urls[n], timeout) for n in names))
    services = dict(zip(names, statuses, strict=True))
    services["gateway"] = READY
    return all(s == READY for s in services.values()), services
