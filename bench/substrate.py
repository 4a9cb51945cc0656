"""The substrate's own ceiling, measured on the very broker and Mongo server the run uses.

- Broker: envelope-sized persistent messages through a topic exchange into one durable quorum
  queue (what every service queue is), published with publisher confirms (a window of
  unconfirmed publishes in flight) and consumed with manual acks; the rate counts messages that
  were published, confirmed, delivered and acked. aio-pika, as libs/bus uses.
- Mongo: PyMongo async transactions through `kit.transactions.run_in_transaction` (what every
  write in the shop uses), three writes each like a handler's (inbox insert, state update, outbox
  insert), at a few concurrencies; the best writes/s counts.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import PyMongoError

from kit.transactions import is_transient, run_in_transaction


async def broker_rate(
    amqp_url: str, prefix: str, *, messages: int, size: int, in_flight: int = 64
) -> dict[str, Any]:
    """Messages/s published (confirmed) and consumed (acked) through one quorum queue."""
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        publish_channel = await connection.channel(publisher_confirms=True)
        consume_channel = await connection.channel()
        await consume_channel.set_qos(prefetch_count=200)
        exchange = await publish_channel.declare_exchange(
            f"{prefix}bench.raw", aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue_name = f"{prefix}bench.raw"
        await publish_channel.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        queue = await consume_channel.get_queue(queue_name)
        bind_queue = await publish_channel.get_queue(queue_name)
        await bind_queue.bind(exchange, routing_key="bench.#")
        body = b"x" * size
        done = asyncio.Event()
        consumed = 0

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal consumed
            await message.ack()
            consumed += 1
            if consumed >= messages:
                done.set()

        tag = await queue.consume(on_message)
        semaphore = asyncio.Semaphore(in_flight)

        async def publish(i: int) -> None:
            async with semaphore:
                await exchange.publish(
                    aio_pika.Message(
                        body,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        message_id=str(uuid.uuid4()),
                        content_type="application/json",
                        type="BenchRaw",
                    ),
                    routing_key="bench.raw",
                )

        t0 = time.perf_counter()
        await asyncio.gather(*(publish(i) for i in range(messages)))
        published = time.perf_counter() - t0
        await asyncio.wait_for(done.wait(), 120)
        elapsed = time.perf_counter() - t0
        await queue.cancel(tag)
        await publish_channel.queue_delete(queue_name)
        await publish_channel.exchange_delete(f"{prefix}bench.raw")
        return {
            "messages": messages,
            "message_bytes": size,
            "in_flight": in_flight,
            "publish_confirm_per_s": messages / published,
            "messages_per_s": messages / elapsed,
        }
    finally:
        await connection.close()


async def _transactions(
    client: AsyncMongoClient[Any], concurrency: int, seconds: float
) -> dict[str, float]:
    db = client["bench_raw"]
    committed = abandoned = 0
    stop_at = time.monotonic() + seconds

    async def worker(doc_id: str) -> None:
        nonlocal committed, abandoned
        await db.state.insert_one({"_id": doc_id, "n": 0})

        async def body(session: AsyncClientSession) -> None:
            event = str(uuid.uuid4())
            await db.inbox.insert_one({"_id": event, "h": "bench"}, session=session)
            await db.state.update_one({"_id": doc_id}, {"$inc": {"n": 1}}, session=session)
            await db.outbox.insert_one(
                {"_id": str(uuid.uuid4()), "cause": event, "body": "x" * 800}, session=session
            )

        while time.monotonic() < stop_at:
            try:
                await run_in_transaction(client, body)
            except PyMongoError as exc:
                # Concurrent transactions of one process conflict on the embedded server; one
                # that still conflicts after every retry is counted, not fatal to the run.
                if not is_transient(exc):
                    raise
                abandoned += 1
                continue
            committed += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(f"state-{concurrency}-{w}") for w in range(concurrency)))
    elapsed = time.perf_counter() - t0
    return {
        "transactions_per_s": committed / elapsed,
        "writes_per_s": 3 * committed / elapsed,
        "abandoned": abandoned,
    }


async def mongo_rate(
    mongo_url: str, *, seconds: float, concurrencies: tuple[int, ...] = (1, 4)
) -> dict[str, Any]:
    """Writes/s in committed 3-write transactions, best over `concurrencies`."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
    try:
        results = {
            f"c{c}": await _transactions(client, c, seconds / len(concurrencies))
            for c in concurrencies
        }
        best = max(results.values(), key=lambda r: r["writes_per_s"])
        return {"writes_per_transaction": 3, **results, "writes_per_s": best["writes_per_s"]}
    finally:
        await client.drop_database("bench_raw")
        await client.close()
