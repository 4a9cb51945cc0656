"""Base models for HTTP bodies, pagination and cursors (api.md: camelCase, unknown fields 422).

`StrictModel` is the base of every request body: unknown fields are refused, names are camelCase
on the wire (snake_case accepted too), strings are stripped and capped at 2000 characters, and a
value of the wrong JSON type is refused rather than coerced: an object or a number where a
string is expected is a 422 (pydantic v2 never turns them into strings), a string where an int or
a bool is expected is a 422 too (`StrictModel` fields of type `int`/`bool` are strict), while an
int given as a JSON number works as usual. Model-wide `strict=True` is not used because FastAPI
validates the parsed JSON as Python objects, where strict mode would refuse ISO date strings and
enum values.

`ResponseModel` is the base of response bodies (camelCase out). Lists answer `Page[T]`
(`{items, nextCursor}`), take `limit: Limit = DEFAULT_LIMIT` (1..100) and `cursor: Cursor`, and
move through results with `encode_cursor` / `decode_cursor`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime
from types import UnionType
from typing import Annotated, Any, ClassVar, Union, get_args, get_origin

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Strict
from pydantic.alias_generators import to_camel

from kit.errors import Problem, validation_problem

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_CURSOR_LENGTH = 1024
STR_MAX_LENGTH = 2000


class StrictModel(BaseModel):
    """Base of request bodies: unknown fields and mistyped values are a 422."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        str_strip_whitespace=True,
        str_max_length=STR_MAX_LENGTH,
    )

    # int and bool fields refuse strings ("12", "yes"); floats still accept JSON ints.
    _strict_types: ClassVar[tuple[type, ...]] = (int, bool)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        changed = False
        for field in cls.__pydantic_fields__.values():
            if _is_strict_candidate(field.annotation, cls._strict_types) and not any(
                isinstance(m, Strict) for m in field.metadata
            ):
                field.metadata.append(Strict())
                changed = True
        if changed:
            cls.model_rebuild(force=True)


def _is_strict_candidate(annotation: Any, types: tuple[type, ...]) -> bool:
    if annotation in types:
        return True
    # `int | None`: strict applies to the int branch, None stays allowed.
    if get_origin(annotation) not in (Union, UnionType):
        return False
    return any(a in types for a in get_args(annotation))


class ResponseModel(BaseModel):
    """Base of response bodies: camelCase on the wire (and in `model_dump()`)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        from_attributes=True,
    )


class Page[T](ResponseModel):
    """One page of a list: `{items, nextCursor}`; `nextCursor` is null on the last page."""

    items: list[T]
    next_cursor: str | None = None


# `limit: Limit = DEFAULT_LIMIT` in a route: 1..100, above 100 is a 422.
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, 1 to {MAX_LIMIT}")]
# `cursor: Cursor = None`: the `nextCursor` of the previous page.
Cursor = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR_LENGTH, description="nextCursor of the previous page"),
]

_SCALARS = (str, int, float, bool, type(None))


def _to_wire(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, _SCALARS):
        return value
    raise TypeError(f"cursor values must be scalars or datetimes, not {type(value).__name__}")


def _from_wire(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"$dt"} and isinstance(value["$dt"], str):
        return datetime.fromisoformat(value["$dt"])
    if isinstance(value, _SCALARS):
        return value
    raise ValueError("not a scalar")


def encode_cursor(position: Mapping[str, Any]) -> str:
    """An opaque cursor for `position` (e.g. `{"createdAt": dt, "id": "…"}`)."""
    payload = {str(k): _to_wire(v) for k, v in position.items()}
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def invalid_cursor() -> Problem:
    return validation_problem([{"field": "cursor", "message": "Invalid cursor"}])


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    """The position in `cursor` (None for no cursor); a tampered or foreign one is a 422.

    Only scalars and datetimes come back, never objects, so a decoded value can be used in a
    query without becoming an operator (`{"$gt": …}`).
    """
    if cursor is None or cursor == "":
        return None
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise invalid_cursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        if not isinstance(payload, dict):
            raise ValueError("not an object")
        return {str(k): _from_wire(v) for k, v in payload.items()}
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise invalid_cursor() from exc


def time_cursor(at: datetime, row_id: str) -> str:
    """The cursor of a list in time order, after the row (`at`, `row_id`)."""
    return encode_cursor({"at": at, "id": row_id})


def time_position(cursor: str | None) -> tuple[datetime, str] | None:
    """The (time, id) a `time_cursor` holds (None for no cursor); any other cursor is a 422."""
    position = decode_cursor(cursor)
    if position is None:
        return None
    at, row_id = position.get("at"), position.get("id")
    if not isinstance(at, datetime) or not isinstance(row_id, str):
        raise invalid_cursor()
    return at, row_id
