"""The committed schemas and AsyncAPI document match the code, and the code breaks no schema."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts import all_events
from contracts.catalogue import CONSUMERS
from contracts.export import (
    ASYNCAPI_FILE,
    EXCHANGE,
    ROOT,
    SCHEMA_DIR,
    BreakingChange,
    breaking_changes,
    check,
    main,
    render_schema,
    schema_filename,
    write,
)

pytestmark = pytest.mark.unit

EVENTS = all_events()


def test_committed_schemas_are_not_broken_without_a_version_bump() -> None:
    problems = breaking_changes(ROOT)
    assert problems == [], "published schemas changed incompatibly:\n" + "\n".join(problems)


def test_committed_files_are_up_to_date() -> None:
    problems = check(ROOT)
    assert problems == [], "run make contracts:\n" + "\n\n".join(problems)


def test_check_command_passes_on_the_committed_tree(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the committed contracts files to tamper with."""
    shutil.copytree(ROOT / SCHEMA_DIR, tmp_path / SCHEMA_DIR)
    shutil.copy(ROOT / ASYNCAPI_FILE, tmp_path / ASYNCAPI_FILE)
    return tmp_path


def published(tree: Path, event_type: str) -> tuple[Path, dict[str, Any]]:
    path = tree / SCHEMA_DIR / schema_filename(EVENTS[event_type])
    schema: dict[str, Any] = json.loads(path.read_text())
    return path, schema


def test_a_removed_property_is_caught(tree: Path) -> None:
    # As if the code had dropped `note`, which the published schema has.
    path, schema = published(tree, "OrderPlaced")
    schema["$defs"]["OrderPlaced"]["properties"]["note"] = {"type": "string"}
    path.write_text(json.dumps(schema))
    assert breaking_changes(tree) == [
        "OrderPlaced.v1.json: $.data.note: property removed "
        "(incompatible: bump the version of OrderPlaced)"
    ]


def test_a_removed_enum_value_is_caught(tree: Path) -> None:
    path, schema = published(tree, "StockReleased")
    schema["$defs"]["StockReleased"]["properties"]["reason"]["enum"].append("stolen")
    path.write_text(json.dumps(schema))
    assert [p.split(": ")[1] for p in breaking_changes(tree)] == ["$.data.reason"]


def test_write_refuses_to_overwrite_a_broken_schema(tree: Path) -> None:
    path, schema = published(tree, "OrderPlaced")
    schema["$defs"]["OrderPlaced"]["properties"]["note"] = {"type": "string"}
    path.write_text(json.dumps(schema))
    with pytest.raises(BreakingChange):
        write(tree)
    assert main(["--root", str(tree)]) == 1
    assert "note" in path.read_text()
    write(tree, force=True)
    assert check(tree) == []


def test_older_versions_are_history(tree: Path) -> None:
    path, schema = published(tree, "OrderPlaced")
    schema["properties"]["data"] = {"type": "string"}
    (tree / SCHEMA_DIR / "OrderPlaced.v0.json").write_text(json.dumps(schema))
    assert breaking_changes(tree) == []


def test_a_removed_event_type_is_caught(tree: Path) -> None:
    (tree / SCHEMA_DIR / "OrderTeleported.v1.json").write_text("{}")
    assert breaking_changes(tree) == [
        "OrderTeleported.v1.json: published event OrderTeleported is gone from the code"
    ]
    assert any("OrderTeleported" in p for p in check(tree))


def test_drift_is_reported(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tree / SCHEMA_DIR / "StockLow.v1.json").write_text("{}\n")
    (tree / SCHEMA_DIR / "StockReserved.v1.json").unlink()
    problems = check(tree)
    assert problems[0].startswith("schemas/StockLow.v1.json: out of date")
    assert problems[1] == "schemas/StockReserved.v1.json: missing"
    assert main(["--check", "--root", str(tree)]) == 1
    assert "make contracts" in capsys.readouterr().err
    write(tree)
    assert check(tree) == []


def test_schema_files_are_deterministic() -> None:
    model = EVENTS["OrderPlaced"]
    text = render_schema(model)
    assert text == render_schema(model)
    assert text.endswith("}\n")
    schema = json.loads(text)
    assert list(schema) == sorted(schema)
    assert schema["properties"]["type"] == {"const": "OrderPlaced", "type": "string"}
    assert schema["properties"]["version"] == {"const": 1, "type": "integer"}
    assert {"id", "occurredAt", "correlationId", "data"} <= set(schema["required"])
    data = schema["$defs"]["OrderPlaced"]
    assert "totalCents" in data["properties"]
    assert "total_cents" not in json.dumps(schema)


def test_asyncapi_document() -> None:
    doc = yaml.safe_load((ROOT / ASYNCAPI_FILE).read_text())
    assert doc["asyncapi"] == "3.0.0"
    assert doc["servers"]["rabbitmq"]["protocol"] == "amqp"
    assert set(doc["channels"]) == {model.ROUTING_KEY for model in EVENTS.values()}
    placed = doc["channels"]["order.placed"]
    assert placed["bindings"]["amqp"]["exchange"] == {
        "name": EXCHANGE,
        "type": "topic",
        "durable": True,
        "autoDelete": False,
        "vhost": "/",
    }
    sends = {f"{m.SOURCE}.send{name}" for name, m in EVENTS.items()}
    receives = {f"{c}.receive{name}" for name, consumers in CONSUMERS.items() for c in consumers}
    expected_ops = sends | receives
    assert set(doc["operations"]) == expected_ops
    receive = doc["operations"]["inventory.receiveOrderPlaced"]
    assert receive["action"] == "receive"
    assert receive["channel"] == {"$ref": "#/channels/order.placed"}
    assert doc["operations"]["order.sendOrderPlaced"]["action"] == "send"
    message = doc["components"]["messages"]["OrderPlaced"]
    assert message["payload"] == {"$ref": "#/components/schemas/OrderPlacedEnvelope"}
    assert_refs_resolve(doc, doc)


def assert_refs_resolve(doc: dict[str, Any], node: Any) -> None:
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
        for value in node.values():
            assert_refs_resolve(doc, value)
    elif isinstance(node, list):
        for item in node:
            assert_refs_resolve(doc, item)
