"""Which failures are of the moment (retry, never poison) and which are not."""

from __future__ import annotations

import pytest
from pymongo.errors import (
    DuplicateKeyError,
    OperationFailure,
    ServerSelectionTimeoutError,
    WriteError,
)

from kit.transactions import Conflict, is_retryable

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (OperationFailure("Write conflict during plan execution", code=112), True),
        (ServerSelectionTimeoutError("no primary"), True),
        (Conflict("version moved on"), True),
        (DuplicateKeyError("E11000"), False),
        (WriteError("document failed validation", code=121), False),
        (ValueError("bad input"), False),
        (KeyError("missing"), False),
    ],
)
def test_only_failures_of_the_moment_are_retryable(error: Exception, retryable: bool) -> None:
    assert is_retryable(error) is retryable
