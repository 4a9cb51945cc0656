"""The names and attributes of MongoDB command spans (OpenTelemetry's database conventions)."""

from __future__ import annotations

import pytest
from pymongo import monitoring

from kit.tracing_clients import command_attributes, command_span_name

pytestmark = pytest.mark.unit


def started(
    command: dict[str, object], database: str = "shop_user"
) -> monitoring.CommandStartedEvent:
    return monitoring.CommandStartedEvent(command, database, 1, ("mongo-0", 27017), 1)


def test_a_cursors_next_batch_names_its_collection() -> None:
    event = started({"getMore": 81, "collection": "users"})
    assert command_span_name(event) == "getMore users"
    assert command_attributes(event)["db.collection.name"] == "users"


def test_a_command_on_no_collection_is_named_after_its_database() -> None:
    event = started({"commitTransaction": 1, "txnNumber": 3}, "admin")
    assert command_span_name(event) == "commitTransaction admin"
    assert command_attributes(event) == {
        "db.system.name": "mongodb",
        "db.namespace": "admin",
        "db.operation.name": "commitTransaction",
        "server.address": "mongo-0",
        "server.port": 27017,
    }


def test_the_command_document_is_never_an_attribute() -> None:
    event = started({"insert": "users", "documents": [{"password": "hunter2"}]})
    assert "hunter2" not in str(command_attributes(event))
    assert command_span_name(event) == "insert users"
