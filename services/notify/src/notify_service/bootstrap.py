"""Wiring of the notify service: real adapters by default, fakes when a test passes them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from pymongo import AsyncMongoClient

from bus.runtime import Background, Bus, service_lifespan
from kit.app import Lifespan
from kit.clock import Clock, utcnow
from notify_service.channels import SandboxProvider, Sender, SmtpEmailSender
from notify_service.delivery import DeliveryPolicy, DeliveryWorker
from notify_service.deps import Deps
from notify_service.handlers import HANDLERS
from notify_service.settings import NotifySettings
from notify_service.store import INDEXES, NOTIFICATIONS


def default_senders(settings: NotifySettings) -> dict[str, Sender]:
    """Email over SMTP; SMS and push through the sandbox providers."""
    return {
        "email": SmtpEmailSender(
            settings.smtp_host,
            settings.smtp_port,
            settings.mail_from,
            timeout=settings.smtp_timeout,
        ),
        "sms": SandboxProvider("sms", latency=settings.sandbox_latency_seconds),
        "push": SandboxProvider("push", latency=settings.sandbox_latency_seconds),
    }


def delivery_policy(settings: NotifySettings) -> DeliveryPolicy:
    return DeliveryPolicy(
        retry_delays=settings.delivery_retry_delays,
        max_attempts=settings.delivery_max_attempts,
        lease=timedelta(seconds=settings.delivery_lease_seconds),
        poll_interval=settings.delivery_poll_seconds,
    )


def bootstrap(
    settings: NotifySettings,
    *,
    mongo: AsyncMongoClient[Any] | None = None,
    bus: Bus | None = None,
    clock: Clock | None = None,
    senders: Mapping[str, Sender] | None = None,
) -> Deps:
    """The notify service's dependencies; `mongo`/`bus`/`clock`/`senders` replace the real ones
    in tests. The delivery worker is this process's: the handlers' rows are born leased to it."""
    deps = Deps.wire(
        settings,
        HANDLERS,
        mongo=mongo,
        bus=bus,
        document_outboxes=(NOTIFICATIONS,),
        clock=clock or utcnow,
        senders=dict(senders) if senders is not None else default_senders(settings),
    )
    # Built once the bus is wired: its outcome events ride in the rows, relayed by that bus.
    deps.worker = DeliveryWorker(
        deps.store,
        deps.documents(NOTIFICATIONS),
        deps.senders,
        delivery_policy(settings),
        clock=deps.clock,
    )
    return deps


def background(deps: Deps) -> dict[str, Background]:
    """The worker sends outside the handlers' transactions; it stops before the bus."""
    return {"worker": deps.worker}


def lifespan(
    settings: NotifySettings, bootstrap_fn: Callable[[NotifySettings], Deps] = bootstrap
) -> Lifespan:
    """The shared service lifespan, with the delivery worker beside the consumer."""
    return service_lifespan(settings, bootstrap_fn, indexes=INDEXES, background=background)
