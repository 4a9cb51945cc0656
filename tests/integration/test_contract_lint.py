"""`make lint`'s contract checks (tools/lint/check.sh) refuse a broken document.

The committed AsyncAPI document and the merged OpenAPI document pass (`make lint` runs the
check on them); here a copy of each, broken the way an edit could break it, must fail the
check and be named in its output. Node and npm run the AsyncAPI project's parser and Spectral.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "tools" / "lint" / "check.sh"
ASYNCAPI = ROOT / "libs" / "contracts" / "asyncapi.yaml"


def check(asyncapi: Path, openapi: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK), "--asyncapi", str(asyncapi), "--openapi", str(openapi)],
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )


@pytest.fixture(scope="module")
def merged() -> dict[str, Any]:
    """The gateway's merged OpenAPI document, as `make lint` builds it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "merged_openapi", ROOT / "tools" / "lint" / "merged_openapi.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    document: dict[str, Any] = module.merged_document()
    return document


def test_a_dangling_reference_in_the_asyncapi_document_fails(
    tmp_path: Path, merged: dict[str, Any]
) -> None:
    good_openapi = tmp_path / "openapi.json"
    good_openapi.write_text(json.dumps(merged))
    text = ASYNCAPI.read_text()
    first_ref = "$ref: '#/components/messages/"
    assert first_ref in text
    broken = tmp_path / "asyncapi.yaml"
    broken.write_text(text.replace(first_ref, first_ref + "Missing", 1))

    result = check(broken, good_openapi)
    assert result.returncode != 0, result.stdout
    assert f"{broken}:" in result.stdout and " error " in result.stdout, result.stdout
    assert "OpenAPI, Spectral OWASP" in result.stdout and "no findings" in result.stdout

    assert check(ASYNCAPI, good_openapi).returncode == 0  # the committed one passes


def test_an_unbounded_request_field_and_a_numeric_id_fail_the_openapi_lint(
    tmp_path: Path, merged: dict[str, Any]
) -> None:
    document = copy.deepcopy(merged)
    # A field a client sends, behind a $ref, with no maxLength (OWASP API4: resource exhaustion).
    register = document["components"]["schemas"]["RegisterBody"]
    register["properties"]["nickname"] = {"type": "string", "title": "Nickname"}
    # A guessable id (OWASP API1).
    order = document["paths"]["/api/v1/orders/{order_id}"]["get"]
    order["parameters"][0]["schema"] = {"type": "integer"}
    broken = tmp_path / "openapi.json"
    broken.write_text(json.dumps(document))

    result = check(ASYNCAPI, broken)
    assert result.returncode != 0, result.stdout
    assert "shop-request-string-limit" in result.stdout, result.stdout
    assert "nickname" in result.stdout
    assert "shop-no-numeric-ids" in result.stdout
    assert "valid AsyncAPI" in result.stdout  # the AsyncAPI half still passed
