"""Delivery channels behind one port: email over SMTP, SMS and push through sandbox providers.

A sender raises `TransientDeliveryError` for what may work later (the worker retries with
backoff) and `PermanentDeliveryError` for what never will (recorded as failed at once).
Each send carries the notification id as its idempotency key (the email's `Message-ID`, the
providers' `idempotency_key`), so a provider that dedupes can drop a resend after a crash.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib
import structlog

from kit.clock import utcnow

log = structlog.get_logger("notify.channels")


class DeliveryError(Exception):
    """A channel could not deliver a message."""


class TransientDeliveryError(DeliveryError):
    """Worth retrying: the provider is down, slow or throttling."""


class PermanentDeliveryError(DeliveryError):
    """Never worth retrying: no address, a rejected recipient."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """What a channel sends: the recipient's address, the texts and the idempotency key."""

    idempotency_key: str
    to: str
    title: str
    body: str


class Sender(Protocol):
    """A channel's provider port."""

    async def send(self, message: OutgoingMessage) -> None: ...


class SmtpEmailSender:
    """Email over real SMTP (aiosmtplib); local mode talks to the aiosmtpd sink."""

    def __init__(self, host: str, port: int, sender: str, *, timeout: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.timeout = timeout

    async def send(self, message: OutgoingMessage) -> None:
        """Send one email; connection problems and 4xx replies are transient, 5xx permanent."""
        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = message.to
        email["Subject"] = message.title
        email["Message-ID"] = f"<{message.idempotency_key}@notify.shop>"
        email.set_content(message.body)
        try:
            await aiosmtplib.send(
                email,
                hostname=self.host,
                port=self.port,
                timeout=self.timeout,
                start_tls=False,
                use_tls=False,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise PermanentDeliveryError(f"recipient refused: {exc}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if 400 <= exc.code < 500:
                raise TransientDeliveryError(f"smtp {exc.code}: {exc.message}") from exc
            raise PermanentDeliveryError(f"smtp {exc.code}: {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise TransientDeliveryError(f"smtp unavailable: {exc!r}") from exc


@dataclass(slots=True)
class SentRecord:
    """What a sandbox provider would have sent."""

    idempotency_key: str
    to: str
    title: str
    body: str
    at: datetime


@dataclass
class SandboxProvider:
    """An SMS or push provider that records instead of sending, and behaves like a real one.

    It takes a little time per call, dedupes by idempotency key like real providers do, and
    fails on demand: `fail_next(n)` makes the next n calls fail transiently, `failure_rate`
    fails that share of calls at random.
    """

    name: str
    latency: float = 0.005
    failure_rate: float = 0.0
    sent: list[SentRecord] = field(default_factory=list)
    calls: int = 0
    _failures_left: int = 0
    _seen: set[str] = field(default_factory=set)

    def fail_next(self, count: int) -> None:
        self._failures_left = count

    async def send(self, message: OutgoingMessage) -> None:
        """Record the message (once per idempotency key) after a short provider delay."""
        self.calls += 1
        await asyncio.sleep(self.latency)
        if self._failures_left > 0:
            self._failures_left -= 1
            raise TransientDeliveryError(f"{self.name} sandbox: injected failure")
        if self.failure_rate and random.random() < self.failure_rate:
            raise TransientDeliveryError(f"{self.name} sandbox: random failure")
        if message.idempotency_key in self._seen:
            return
        self._seen.add(message.idempotency_key)
        self.sent.append(
            SentRecord(message.idempotency_key, message.to, message.title, message.body, utcnow())
        )
        log.info("notify.sandbox_sent", provider=self.name, to=message.to, title=message.title)
