"""schemathesis against the gateway's merged OpenAPI document, as anonymous, a Customer and an
Admin: no 5xx, every error is problem+json with a stable UPPER_SNAKE `code`, every response
matches the documented status codes, content types and schemas, and no response carries a card
token or a password hash.

schemathesis' Python API (`schemathesis.openapi.from_dict`, `APIOperation.as_strategy`,
`Case.call` / `Case.validate_response`) drives Hypothesis directly, with a bounded number of
examples per operation and no shrinking, so the run stays short. The calls are blocking
(requests), so they run in a worker thread while the shop keeps serving on the event loop.
Failures are collected over every operation and reported together.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from requests.adapters import HTTPAdapter
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import Secure

pytestmark = [pytest.mark.security, pytest.mark.asyncio(loop_scope="package")]

CODE = re.compile(r"^[A-Z][A-Z0-9_]*$")
LEAKS = re.compile(r"pm_card_|\$argon2|password_hash|passwordHash")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Examples per operation and identity: enough to meet every parameter, bounded for `make test`.
EXAMPLES = {GenerationMode.POSITIVE: 3, GenerationMode.NEGATIVE: 1}
# The system endpoints answer for the whole deployment, not the API (and /readyz may be 503).
SKIPPED_PATHS = {"/healthz", "/readyz"}


def problem_failures(response: schemathesis.Response) -> list[str]:
    """What is wrong with an error response against api.md's problem+json rules."""
    if response.status_code < 400:
        return []
    found: list[str] = []
    content_type = (response.headers.get("content-type") or [""])[0]
    if not content_type.startswith("application/problem+json"):
        found.append(f"error {response.status_code} as {content_type!r}")
        return found
    body = response.json()
    if not CODE.match(str(body.get("code", ""))):
        found.append(f"error {response.status_code} without a stable code: {body}")
    if body.get("status") != response.status_code:
        found.append(f"problem status {body.get('status')} on a {response.status_code}")
    return found


class FromAddress(HTTPAdapter):
    """Connections that leave from one local address (requests' own adapter, bound)."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, source_address=(self.address, 0), **kwargs)


class Fuzzer:
    """Runs the operations one identity and mode at a time, collecting failures.

    It connects from a client address of its own, so the per-IP limits of check/register/login
    are not shared with the other tests."""

    def __init__(self, base_url: str, address: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.mount("http://", FromAddress(address))
        self.failures: list[str] = []
        self.calls = 0

    def exercise(self, case: Any, who: str, headers: dict[str, str]) -> None:
        label = f"{who} {case.method} {case.formatted_path}"
        try:
            response = case.call(base_url=self.base_url, session=self.session, headers=headers)
        except requests.RequestException as exc:
            self.failures.append(f"{label}: {exc!r}")
            return
        self.calls += 1
        found = problem_failures(response)
        if LEAKS.search(response.text):
            found.append(f"a secret in the response: {response.text[:200]}")
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            found.extend(" ".join(str(failure).split())[:300] for failure in group.exceptions)
        detail = ""
        if response.status_code >= 500 or response.status_code == 400:
            detail = f" (query {case.query}, headers {case.headers}, body {case.body!r})"[:400]
        for failure in found:
            self.failures.append(f"{label} → {response.status_code}: {failure}{detail}")

    def run(self, operation: Any, mode: GenerationMode, who: str, headers: dict[str, str]) -> None:
        @settings(
            max_examples=EXAMPLES[mode],
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def test(case: Any) -> None:
            self.exercise(case, who, headers)

        try:
            test()
        except Unsatisfiable:
            pass  # no negative case exists (an operation without parameters or body)

    def fuzz(self, schema: Any, identities: dict[str, dict[str, str]]) -> None:
        """Every operation × identity × generation mode."""
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.path in SKIPPED_PATHS:
                continue
            for who, headers in identities.items():
                for mode in EXAMPLES:
                    self.run(operation, mode, who, headers)


async def test_the_merged_openapi_holds_for_anonymous_customer_and_admin(secure: Secure) -> None:
    response = await secure.client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    schema = schemathesis.openapi.from_dict(document)
    base_url = str(secure.client.base_url).rstrip("/")
    identities = {
        "anonymous": {},
        "customer": secure.headers("customer"),
        "admin": secure.headers("admin"),
    }
    fuzzer = Fuzzer(base_url, secure.new_address())
    await asyncio.to_thread(fuzzer.fuzz, schema, identities)
    failures, calls = fuzzer.failures, fuzzer.calls
    operations = sum(len(methods) for methods in document["paths"].values())
    assert calls >= operations * len(identities), (calls, operations)
    unique = sorted(set(failures))
    errors = [line[:1500] for line in secure.logs.lines if '"level": "error"' in line]
    assert not unique, (
        f"{len(unique)} failures in {calls} calls:\n"
        + "\n".join(unique[:60])
        + "\nerror log lines:\n"
        + "\n".join(errors[:10])
    )
