"""Is the broker there, are the services ready, and what to tell the developer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx

from runner.accounts import LocalAccounts
from runner.config import SERVICE_NAMES, Config, redact


async def check_broker(url: str, timeout: float = 5.0) -> str | None:
    """None when an AMQP handshake with the broker succeeds, else the reason it did not."""
    import aio_pika

    # aiormq logs every failed connect attempt; the runner explains the failure itself.
    for name in ("aiormq", "aio_pika"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        connection = await asyncio.wait_for(aio_pika.connect(url, timeout=timeout), timeout + 1)
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable"
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    await connection.close()
    return None


BROKER_HELP = """\
RabbitMQ is not reachable at {url}: {reason}

Start it, then run `make run` again:
  Debian/Ubuntu:  sudo apt-get install rabbitmq-server && sudo rabbitmq-server -detached
  Docker:         docker run -d --name shop-rabbit -p 5672:5672 -p 15672:15672 rabbitmq:3-management
or point AMQP_URL at a broker you have (amqp://user:password@host:5672/vhost).
"""


async def readiness(client: httpx.AsyncClient, config: Config) -> dict[str, str]:
    """{service: "ready" | why not} for every started service.

    A full run asks the gateway, whose `/readyz` reports every service. A partial run
    (`--only`), or a full one whose gateway does not answer yet, asks each service itself (the
    gateway only for liveness: it cannot be ready without all the services behind it).
    """
    # Second instances (SHOP_REPLICAS) answer for themselves: the gateway does not know them.
    extra = {
        config.instance_name(name, i): f"http://127.0.0.1:{config.instance_port(name, i)}"
        for name in config.only
        for i in range(1, config.instances(name))
    }
    extra_statuses = await asyncio.gather(*(own_status(client, n, u) for n, u in extra.items()))
    replicas = dict(zip(extra, extra_statuses, strict=True))
    if set(config.only) == set(SERVICE_NAMES):
        try:
            response = await client.get(config.url("gateway") + "/readyz", timeout=3.0)
            services = response.json()["services"]
            return {name: str(services.get(name, "unknown")) for name in config.only} | replicas
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            pass
    statuses = await asyncio.gather(*(own_status(client, n, config.url(n)) for n in config.only))
    return dict(zip(config.only, statuses, strict=True)) | replicas


async def own_status(client: httpx.AsyncClient, name: str, url: str) -> str:
    """One service's own answer: "ready", "not ready (503)" or "down"."""
    path = "/healthz" if name == "gateway" else "/readyz"
    try:
        response = await client.get(url + path, timeout=2.0)
    except httpx.HTTPError:
        return "down"
    return "ready" if response.status_code == 200 else f"not ready ({response.status_code})"


async def wait_ready(config: Config, stop: asyncio.Event) -> dict[str, str]:
    """Poll until every started service is ready; {service: status} of those that are not."""
    deadline = time.monotonic() + config.ready_timeout
    not_ready: dict[str, str] = dict.fromkeys(config.only, "no answer")
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline and not stop.is_set():
            statuses = await readiness(client, config)
            not_ready = {n: s for n, s in statuses.items() if s != "ready"}
            if not not_ready:
                return {}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    return not_ready


def banner(
    config: Config, mongo_url: str, seconds: float, accounts: LocalAccounts | None = None
) -> list[str]:
    """What a developer needs once everything answers (the run's accounts included)."""
    lines = [f"ready in {seconds:.1f}s"]
    if "gateway" in config.only:
        lines += [
            f"web app   {config.url('gateway')}/",
            f"gateway   {config.url('gateway')}",
            f"API docs  {config.url('gateway')}/docs",
        ]
    lines += [
        "services  " + ", ".join(f"{n} :{config.port(n)}" for n in config.only if n != "gateway"),
        f"mongo     {redact(mongo_url)}",
        f"broker    {redact(config.amqp_url)}",
    ]
    if "notify" in config.only:
        lines.append(f"mail      {config.run_dir / 'mail'} (SMTP sink :{config.smtp_port})")
    if accounts is not None:
        lines += accounts.banner()
    elif "user" in config.only:
        lines += [
            "accounts: set SHOP_ADMIN_EMAIL/SHOP_ADMIN_PASSWORD and SHOP_MANAGER_EMAIL/",
            "  SHOP_MANAGER_PASSWORD for an Admin and a Manager (generated in SHOP_ENV=dev only)",
        ]
    lines.append("Ctrl-C stops everything.")
    return lines
