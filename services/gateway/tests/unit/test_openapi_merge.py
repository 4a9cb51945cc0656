"""Merging the services' OpenAPI documents into the gateway's."""

from __future__ import annotations

from typing import Any

import pytest
from gateway_service.openapi import merge

pytestmark = pytest.mark.unit

PROBLEM = {"type": "object", "properties": {"code": {"type": "string"}}}


def doc(paths: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    return {"openapi": "3.1.0", "paths": paths, "components": {"schemas": schemas}}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def op(schema: dict[str, Any]) -> dict[str, Any]:
    content = {"application/json": {"schema": schema}}
    return {"get": {"responses": {"200": {"content": content}}}}


def schema_of(document: dict[str, Any], path: str) -> Any:
    return document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]


BASE = {"openapi": "3.1.0", "info": {"title": "shop"}, "paths": {"/healthz": {}}}


def test_paths_are_merged_and_service_health_paths_left_out() -> None:
    merged = merge(
        BASE,
        {
            "user": doc(
                {"/api/v1/users/me": op(ref("Problem")), "/healthz": {}}, {"Problem": PROBLEM}
            ),
            "order": doc({"/api/v1/orders": op(ref("Problem"))}, {"Problem": PROBLEM}),
        },
    )
    assert set(merged["paths"]) == {"/healthz", "/api/v1/users/me", "/api/v1/orders"}
    # identical definitions stay one shared schema
    assert merged["components"]["schemas"] == {"Problem": PROBLEM}


def test_colliding_schema_names_are_renamed_per_service_and_refs_rewritten() -> None:
    user_item = {"type": "object", "properties": {"userId": {"type": "string"}}}
    order_item = {"type": "object", "properties": {"orderId": {"type": "string"}}}
    # `Page` is textually identical in both but refers to the colliding `Item`.
    page = {"type": "object", "properties": {"items": {"type": "array", "items": ref("Item")}}}
    merged = merge(
        BASE,
        {
            "user": doc({"/api/v1/users": op(ref("Page"))}, {"Item": user_item, "Page": page}),
            "order": doc({"/api/v1/orders": op(ref("Page"))}, {"Item": order_item, "Page": page}),
        },
    )
    schemas = merged["components"]["schemas"]
    assert set(schemas) == {"user_Item", "order_Item", "user_Page", "order_Page"}
    assert schema_of(merged, "/api/v1/users") == ref("user_Page")
    assert schema_of(merged, "/api/v1/orders") == ref("order_Page")
    assert schemas["order_Page"]["properties"]["items"]["items"] == ref("order_Item")
    assert schemas["user_Item"] == user_item


def test_operations_with_path_parameters_document_the_edges_invalid_path() -> None:
    """A path parameter can spell a path the edge refuses (paths.py): 400 INVALID_PATH."""
    base = BASE | {"paths": {"/healthz": {}, "/api/v1/ops/dlq/{service}/redrive": {"post": {}}}}
    user = doc(
        {
            "/api/v1/users/me": op(ref("Problem")),
            "/api/v1/users/{userId}": op(ref("Problem")) | {"parameters": []},
        },
        {"Problem": PROBLEM},
    )
    merged = merge(base, {"user": user})["paths"]
    for path, method in [
        ("/api/v1/users/{userId}", "get"),
        ("/api/v1/ops/dlq/{service}/redrive", "post"),
    ]:
        refusal = merged[path][method]["responses"]["400"]
        assert refusal["description"].startswith("INVALID_PATH")
        assert "application/problem+json" in refusal["content"]
    assert "400" not in merged["/api/v1/users/me"]["get"]["responses"]
    assert merged["/api/v1/users/{userId}"]["parameters"] == []
