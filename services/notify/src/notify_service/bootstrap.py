"""Wiring of the notify service: real adapters by default, fakes when a test passes them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pymongo import AsyncMongoClient

from bus.runtime import Bus, ServiceDeps
from contracts import new_id
from notify_service.channels import SandboxProvider, Sender, SmtpEmailSender
from notify_service.delivery import DeliveryPolicy, DeliveryWorker
from notify_service.handlers import Handoff, build_handlers
from notify_service.settings import NotifySettings
from notify_service.store import NOTIFICATIONS, NotifyStore, Row


@dataclass(kw_only=True)
class Deps(ServiceDeps):
    """What the notify service's routes and handlers work with."""

    settings: NotifySettings
    store: NotifyStore
    senders: Mapping[str, Sender]
    worker: DeliveryWorker


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


def bootstrap(
    settings: NotifySettings,
    *,
    mongo: AsyncMongoClient[Any] | None = None,
    bus: Bus | None = None,
    senders: Mapping[str, Sender] | None = None,
) -> Deps:
    """The notify service's dependencies; `mongo`/`bus`/`senders` replace the real ones in tests."""
    policy = DeliveryPolicy(
        retry_delays=settings.delivery_retry_delays,
        max_attempts=settings.delivery_max_attempts,
        lease=timedelta(seconds=settings.delivery_lease_seconds),
        poll_interval=settings.delivery_poll_seconds,
    )
    owner = f"notify-{new_id()}"
    worker: DeliveryWorker | None = None

    def give(rows: list[Row], after: float) -> None:
        # The handlers exist before the worker (the bus is built with them, the worker with the
        # bus); they only call this after a commit, once the service runs.
        if worker is not None:
            worker.hand_over(rows, after)

    handoff = Handoff(owner, policy.lease, give)
    base = ServiceDeps.wire(
        settings,
        build_handlers(settings.public_base_url, settings.nudge_hold_seconds, handoff),
        mongo=mongo,
        bus=bus,
        document_outboxes=(NOTIFICATIONS,),
    )
    store = NotifyStore(base.db)
    chosen = dict(senders) if senders is not None else default_senders(settings)
    worker = DeliveryWorker(store, base.documents(NOTIFICATIONS), chosen, policy, owner=owner)
    return Deps(
        settings=settings,
        mongo=base.mongo,
        db=base.db,
        bus=base.bus,
        store=store,
        senders=chosen,
        worker=worker,
    )
