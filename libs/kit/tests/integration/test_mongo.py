"""kit.mongo against a real MongoDB-protocol server: client options, indexes, readiness."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from pydantic_settings import SettingsConfigDict
from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError
from pymongo.uri_parser import parse_uri

from kit.mongo import IndexSpec, connect, database, ensure_indexes, ping
from kit.settings import ServiceSettings

pytestmark = pytest.mark.integration


class StockSettings(ServiceSettings):
    service_name: ClassVar[str] = "stock"
    model_config = SettingsConfigDict(env_prefix="STOCK_")


SPECS = [
    IndexSpec("users", "email", unique=True),
    IndexSpec("users", [("role", 1), ("createdAt", DESCENDING)]),
    IndexSpec(
        "users",
        "username",
        unique=True,
        partial_filter={"deleted": False},
        name="username_live",
    ),
    IndexSpec("sessions", "expiresAt", ttl_seconds=0),
]


async def test_connect_ensure_indexes_and_ping(mongo_url: str, db_name: str) -> None:
    settings = StockSettings(mongo_url=mongo_url, mongo_db=db_name)
    client = connect(settings)
    try:
        assert await ping(client)
        db = database(client, settings)
        assert db.name == db_name
        names = await ensure_indexes(db, SPECS)
        assert set(names) == {"email_1", "role_1_createdAt_-1", "username_live", "expiresAt_1"}
        assert set(await ensure_indexes(db, SPECS)) == set(names)  # idempotent

        info: dict[str, Any] = await db.users.index_information()
        assert info["email_1"]["unique"] is True
        await db.users.insert_one({"email": "a@x", "username": "a", "deleted": False})
        with pytest.raises(DuplicateKeyError):
            await db.users.insert_one({"email": "a@x", "username": "b", "deleted": False})

        # Datetimes come back aware; UUIDs round-trip in the standard representation.
        token = uuid.uuid4()
        later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
        await db.sessions.insert_one({"_id": token, "expiresAt": later})
        stored = await db.sessions.find_one({"_id": token})
        assert stored is not None
        assert stored["_id"] == token
        assert stored["expiresAt"] == later
        assert stored["expiresAt"].tzinfo is not None
    finally:
        await client.drop_database(db_name)
        await client.close()


async def test_ping_is_false_when_nothing_answers() -> None:
    settings = StockSettings(mongo_url="mongodb://127.0.0.1:1/?directConnection=true")
    client = connect(settings, serverSelectionTimeoutMS=200)
    try:
        assert await ping(client, timeout=1.0) is False
    finally:
        await client.close()


async def test_each_command_is_a_client_span_of_the_current_trace(
    mongo_url: str, db_name: str, mongo_is_embedded: bool
) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from kit.tracing import export_spans

    exporter = InMemorySpanExporter()
    export_spans(SimpleSpanProcessor(exporter), "stock")
    settings = StockSettings(mongo_url=mongo_url, mongo_db=db_name)
    client = connect(settings)
    try:
        db = database(client, settings)
        await db.things.create_index("key", unique=True)
        exporter.clear()
        with trace.get_tracer("test").start_as_current_span("handler") as parent:
            await db.things.insert_one({"secret": "hunter2", "key": 1})
            await db.things.find_one({})
            with pytest.raises(DuplicateKeyError):
                await db.things.insert_one({"key": 1})
        trace_id = parent.get_span_context().trace_id
        commands = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CLIENT]
        by_name = {s.name: s for s in commands}
        assert {"insert things", "find things"} <= set(by_name)
        # OpenTelemetry's database conventions (MongoDB), not the old db.name / db.operation.
        found = dict(by_name["find things"].attributes or {})
        server = (found.pop("server.address"), found.pop("server.port"))
        assert found == {
            "db.system.name": "mongodb",
            "db.namespace": db_name,
            "db.collection.name": "things",
            "db.operation.name": "find",
        }
        if mongo_is_embedded:  # (a replica set member may answer under another name)
            assert server in parse_uri(mongo_url)["nodelist"]
        first, refused = [s for s in commands if s.name == "insert things"]
        assert first.status.is_ok and "error.type" not in (first.attributes or {})
        assert not refused.status.is_ok
        assert (refused.attributes or {})["db.response.status_code"] == "11000"
        assert (refused.attributes or {})["error.type"] in {"DuplicateKey", "11000"}
        for span in commands:
            assert span.context.trace_id == trace_id
            assert "hunter2" not in str(span.attributes)
    finally:
        await client.drop_database(db_name)
        await client.close()


async def test_no_command_spans_while_no_exporter_is_attached(
    mongo_url: str, db_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from kit import mongo, tracing
    from kit.tracing_clients import MongoCommandTracer

    exporter = InMemorySpanExporter()
    tracing.export_spans(SimpleSpanProcessor(exporter), "stock")
    # As in a process that had no exporter when it made its client (the flag is process-wide
    # and sticky): no command listener, so not even PyMongo's command events are built.
    monkeypatch.setattr(mongo, "exporting", lambda: False)
    settings = StockSettings(mongo_url=mongo_url, mongo_db=db_name)
    client = connect(settings)
    try:
        # (Other suites may register a global listener of their own: kit's is what must lack.)
        assert not [
            listener
            for listener in client.options.event_listeners
            if isinstance(listener, MongoCommandTracer)
        ]
        with trace.get_tracer("test").start_as_current_span("handler"):
            await database(client, settings).things.insert_one({"n": 1})
        assert [s.name for s in exporter.get_finished_spans()] == ["handler"]
    finally:
        exporter.clear()
        await client.drop_database(db_name)
        await client.close()


async def test_a_stalled_server_is_not_ready_and_a_write_waits_for_it_not_forever() -> None:
    """SIGSTOP the server (a stalled store): the readiness ping answers False within its
    timeout; a write issued meanwhile completes once the server runs again."""
    server = subprocess.Popen(
        [sys.executable, "-m", "devkit.embedded_mongo", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert server.stdout is not None
    url = ""
    for _ in range(200):
        line = server.stdout.readline().decode()
        if line.startswith("READY ") or not line:
            url = line.removeprefix("READY ").strip()
            break
    assert url, "the embedded server did not start"
    client = connect(StockSettings(MONGO_URL=url))  # type: ignore[call-arg]
    try:
        assert await ping(client)
        os.kill(server.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            assert await ping(client, timeout=1.0) is False
            assert time.monotonic() - started < 3
            write = asyncio.create_task(client.stall.items.insert_one({"_id": 1}))
            await asyncio.sleep(1.5)
            assert not write.done()
        finally:
            os.kill(server.pid, signal.SIGCONT)
        await asyncio.wait_for(write, 15)
        assert await ping(client)
        assert await client.stall.items.count_documents({}) == 1
    finally:
        await client.close()
        server.terminate()
        server.wait(10)
