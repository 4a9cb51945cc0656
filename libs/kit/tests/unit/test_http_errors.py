"""What a client sees when a request goes wrong: problem+json with a stable code."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.unit

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert {"type", "title", "detail"} <= set(body)
    assert response.headers["x-request-id"]
    return body


async def test_valid_body_is_accepted_in_camel_case(client: httpx.AsyncClient) -> None:
    body = {"name": " lamp ", "lines": [{"productId": "p1", "quantity": 2}]}
    response = await client.post("/things", json=body)
    assert response.status_code == 201
    assert response.json() == {"thingId": "t1", "name": "lamp"}


async def test_unknown_field_is_a_422_naming_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"name": "a", "isAdmin": True})
    body = assert_problem(response, 422, "VALIDATION_ERROR")
    assert body["errors"] == [{"field": "isAdmin", "message": "Unknown field"}]


async def test_object_where_a_string_is_expected_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"name": {"$ne": ""}})
    body = assert_problem(response, 422, "VALIDATION_ERROR")
    assert [e["field"] for e in body["errors"]] == ["name"]  # type: ignore[union-attr,index]


async def test_number_where_a_string_is_expected_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"name": 12})
    assert_problem(response, 422, "VALIDATION_ERROR")


async def test_nested_field_path_is_dotted_camel_case(client: httpx.AsyncClient) -> None:
    body = {"name": "a", "lines": [{"productId": "p1", "quantity": "2"}]}
    response = await client.post("/things", json=body)
    problem = assert_problem(response, 422, "VALIDATION_ERROR")
    assert problem["errors"] == [
        {"field": "lines.0.quantity", "message": "Input should be a valid integer"}
    ]


async def test_password_is_never_echoed_in_a_422(client: httpx.AsyncClient) -> None:
    secret = "correct horse battery staple"
    response = await client.post("/things", json={"name": ["x"], "password": secret, "x": secret})
    assert_problem(response, 422, "VALIDATION_ERROR")
    assert secret not in response.text
    response = await client.post("/things", json={"name": "a", "password": {"p": secret}})
    assert_problem(response, 422, "VALIDATION_ERROR")
    assert secret not in response.text


async def test_limit_above_100_is_a_422(client: httpx.AsyncClient) -> None:
    assert (await client.get("/things", params={"limit": 100})).status_code == 200
    body = assert_problem(await client.get("/things?limit=101"), 422, "VALIDATION_ERROR")
    assert body["errors"][0]["field"] == "limit"  # type: ignore[index]
    assert_problem(await client.get("/things?limit=0"), 422, "VALIDATION_ERROR")


async def test_default_page_answers_items_and_next_cursor(client: httpx.AsyncClient) -> None:
    response = await client.get("/things")
    assert response.status_code == 200
    assert set(response.json()) == {"items", "nextCursor"}
    assert len(response.json()["items"]) == 20


async def test_malformed_json_is_a_422_on_the_body(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/things", content=b'{"name": "a",', headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 422, "VALIDATION_ERROR")
    assert body["errors"] == [{"field": "body", "message": "Malformed JSON"}]
    # Bytes that are not even text (FastAPI's own 400) are the same 422.
    response = await client.post(
        "/things", content=b"!\x10\xd9\xde\x15\xc6", headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 422, "VALIDATION_ERROR")
    assert body["errors"] == [{"field": "body", "message": "Malformed JSON"}]


async def test_unexpected_error_is_a_500_without_internals(client: httpx.AsyncClient) -> None:
    response = await client.get("/boom", headers={"x-request-id": "req-500"})
    body = assert_problem(response, 500, "INTERNAL_ERROR")
    assert body["requestId"] == "req-500"
    assert response.headers["x-request-id"] == "req-500"
    for leak in ("Traceback", "RuntimeError", "hunter2", "boom", ".py"):
        assert leak not in response.text


async def test_unknown_route_is_404_not_found(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/nowhere"), 404, "NOT_FOUND")


async def test_wrong_method_is_405_method_not_allowed(client: httpx.AsyncClient) -> None:
    response = await client.delete("/things")
    assert_problem(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"]


async def test_invalid_state_carries_current_status(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/state"), 409, "INVALID_STATE")
    assert body["currentStatus"] == "PAID"


async def test_problem_extras_are_part_of_the_body(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/problem"), 409, "PROFILE_INCOMPLETE")
    assert body["missing"] == ["address"]


async def test_429_carries_retry_after(client: httpx.AsyncClient) -> None:
    response = await client.get("/slow-down")
    assert_problem(response, 429, "RATE_LIMITED")
    assert response.headers["retry-after"] == "30"


async def test_oversized_body_is_413(client: httpx.AsyncClient, app: object) -> None:
    big = b'{"name": "' + b"a" * 1_100_000 + b'"}'
    response = await client.post(
        "/things", content=big, headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE")


async def test_oversized_chunked_body_is_413(client: httpx.AsyncClient) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"name": "'
        for _ in range(20):
            yield b"a" * 65536
        yield b'"}'

    response = await client.post(
        "/things", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE")


async def test_string_fields_are_capped(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"name": "a" * 2001})
    assert_problem(response, 422, "VALIDATION_ERROR")


def test_openapi_documents_problems_not_fastapis_default_422(app: object) -> None:
    from fastapi import FastAPI

    assert isinstance(app, FastAPI)
    document = app.openapi()
    assert document["info"]["title"] == "demo"
    assert "Problem" in document["components"]["schemas"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    unprocessable = document["paths"]["/things"]["post"]["responses"]["422"]
    assert unprocessable["content"][PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert {"/healthz", "/readyz"} <= set(document["paths"])


@pytest.mark.parametrize("kind", ["conflict", "down"])
async def test_a_busy_or_unreachable_database_is_a_503_to_retry(
    client: httpx.AsyncClient, kind: str
) -> None:
    response = await client.get("/contended", params={"kind": kind})
    assert_problem(response, 503, "SERVICE_UNAVAILABLE")
    assert response.headers["retry-after"] == "1"
    assert "hunter2" not in response.text


async def test_a_lost_race_is_a_409(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/contended?kind=race"), 409, "CONCURRENT_UPDATE")


async def test_any_other_database_error_is_still_a_500(client: httpx.AsyncClient) -> None:
    response = await client.get("/contended?kind=bad")
    assert_problem(response, 500, "INTERNAL_ERROR")
    assert "$where" not in response.text
