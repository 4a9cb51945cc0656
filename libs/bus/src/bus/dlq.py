"""Inspecting and redriving a service's dead letters (admin operations)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from bus import retry
from bus.config import BusConfig
from bus.publisher import publish_confirmed
from bus.topology import Names

EXCERPT = 500


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message in a DLQ, as an admin sees it."""

    id: str | None
    type: str | None
    correlation_id: str | None
    routing_key: str | None
    error: str | None
    error_type: str | None
    attempts: int | None
    failed_at: str | None
    handler: str | None
    service: str | None
    body_excerpt: str
    headers: dict[str, Any]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def to_dead_letter(message: AbstractIncomingMessage) -> DeadLetter:
    """Describe a DLQ message from its properties and our dead-letter headers."""
    headers = dict(message.headers or {})
    attempts = headers.get(retry.ATTEMPTS)
    error, error_type = _text(headers.get(retry.ERROR)), _text(headers.get(retry.ERROR_TYPE))
    reason = _broker_reason(headers)
    if error is None and reason is not None:
        # Dead-lettered by the broker itself (the delivery-limit backstop): no error of ours.
        error, error_type = f"dead-lettered by the broker: {reason}", reason
    return DeadLetter(
        id=message.message_id,
        type=message.type,
        correlation_id=message.correlation_id,
        routing_key=_text(headers.get(retry.ORIGINAL_ROUTING_KEY)),
        error=error,
        error_type=error_type,
        attempts=int(attempts) if isinstance(attempts, int | str) else None,
        failed_at=_text(headers.get(retry.FAILED_AT)),
        handler=_text(headers.get(retry.HANDLER)),
        service=_text(headers.get(retry.SERVICE)),
        body_excerpt=message.body[:EXCERPT].decode(errors="replace"),
        headers={k: v for k, v in headers.items() if isinstance(v, str | int | float | bool)},
    )


def _broker_reason(headers: dict[str, Any]) -> str | None:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return _text(deaths[0].get("reason"))  # the most recent death comes first
    return None


async def list_dead_letters(
    channel: AbstractChannel, config: BusConfig, limit: int = 100
) -> list[DeadLetter]:
    """Up to `limit` dead letters, left in the queue.

    Messages are fetched unacked and all requeued at the end, so nothing is lost if this process
    dies midway (the broker requeues unacked messages of a closed channel). While listed they
    are invisible to a concurrent redrive, so run one admin operation at a time.
    """
    queue = await channel.get_queue(Names.of(config).dlq, ensure=False)
    # What must be visible again afterwards: with a limit below the queue's length, the held
    # messages alone are not the whole queue.
    waiting = await _message_count(channel, queue.name)
    held: list[AbstractIncomingMessage] = []
    try:
        while len(held) < limit:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            held.append(message)
        return [to_dead_letter(m) for m in held]
    finally:
        for message in held:
            await message.reject(requeue=True)
        if held:
            await _wait_until_back(channel, queue.name, max(waiting, len(held)))


async def redrive(channel: AbstractChannel, config: BusConfig, limit: int | None = None) -> int:
    """Move dead letters back to the service queue with a fresh attempt count; how many moved.

    Each copy is confirmed before its DLQ original is acked. A message that comes back to the
    DLQ during the run (it failed again at once) ends the run, so the loop always stops.

    A confirm that does not come within `config.publish_timeout` (a blocked broker) ends the
    run with `TimeoutError` and leaves that original in the DLQ. The unconfirmed copy may still
    have reached the service queue: a message is then there twice (never lost), and the inbox
    makes the second delivery a no-op.
    """
    names = Names.of(config)
    queue = await channel.get_queue(names.dlq, ensure=False)
    seen: set[str] = set()
    moved = 0
    while limit is None or moved < limit:
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            break
        key = message.message_id or hashlib.sha256(message.body).hexdigest()
        if key in seen:
            await message.reject(requeue=True)
            break
        seen.add(key)
        copy = aio_pika.Message(
            message.body,
            headers=retry.redrive_headers(message.headers),
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            type=message.type,
            timestamp=message.timestamp,
        )
        try:
            await publish_confirmed(
                channel.default_exchange,
                copy,
                names.queue,
                mandatory=True,
                timeout=config.publish_timeout,
            )
        except BaseException:
            # A publish cut short can leave the channel closed: its unacked message goes back
            # to the DLQ with it, so a reject that fails loses nothing and must not hide why
            # the publish failed.
            with contextlib.suppress(Exception):
                await message.reject(requeue=True)
            raise
        await message.ack()
        moved += 1
    return moved


async def dead_letter_count(channel: AbstractChannel, config: BusConfig) -> int:
    """Messages ready in the DLQ (a metric and a readiness signal for operators)."""
    return await _message_count(channel, Names.of(config).dlq)


async def _wait_until_back(channel: AbstractChannel, queue: str, count: int) -> None:
    # Requeueing is asynchronous on the broker (a quorum queue commits the return through its
    # log): wait briefly so that a count or a redrive right after a listing sees the messages.
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and await _message_count(channel, queue) < count:
        await asyncio.sleep(0.02)


async def _message_count(channel: AbstractChannel, queue: str) -> int:
    # A passive declare on the raw channel: aio-pika's robust channel answers passive
    # declarations of known queues from its cache, with a stale message count.
    raw = await channel.get_underlay_channel()
    declared = await raw.queue_declare(queue, passive=True)
    return int(declared.message_count or 0)
