"""Valid sample instances of any contract model, for tests: `sample(OrderPlaced, order_id="o1")`.

Fields are filled from the model's annotations, so a new event is covered without writing a
fixture; a field type the factory does not know raises TypeError rather than being skipped.
"""

from __future__ import annotations

import types
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AwareDatetime, BaseModel

_NOW = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def sample[M: BaseModel](model: type[M], *, minimal: bool = False, **overrides: Any) -> M:
    """A valid `model`: every field filled, or only the required ones when `minimal`."""
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name in overrides:
            values[name] = overrides.pop(name)
        elif field.is_required() or not minimal:
            values[name] = _value(field.annotation, field.metadata, name, minimal)
    if overrides:
        raise TypeError(f"{model.__name__} has no fields {sorted(overrides)}")
    return model(**values)


def _value(annotation: Any, metadata: list[Any], name: str, minimal: bool) -> Any:
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        return _value(args[0], [*metadata, *args[1:]], name, minimal)
    if origin in (Union, types.UnionType):
        return _value(next(a for a in args if a is not type(None)), metadata, name, minimal)
    if origin is Literal:
        return args[0]
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return (_value(args[0], [], name, minimal),)
        return tuple(_value(arg, [], name, minimal) for arg in args)
    if annotation is bool:
        return True
    if annotation is int:
        return int(_in_bounds(1, metadata))
    if annotation is float:
        return _in_bounds(0.5, metadata)
    if annotation is str:
        return f"{name}-1"
    if annotation in (datetime, AwareDatetime):
        return _NOW
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return sample(annotation, minimal=minimal)
    raise TypeError(f"no sample value for field {name!r} of type {annotation!r}")


def _in_bounds(preferred: float, metadata: list[Any]) -> float:
    # Ge/Gt/Le/Lt constraints (annotated_types) as pydantic puts them in a field's metadata.
    low, high = float("-inf"), float("inf")
    for item in metadata:
        if (ge := getattr(item, "ge", None)) is not None:
            low = max(low, float(ge))
        if (gt := getattr(item, "gt", None)) is not None:
            low = max(low, float(gt) + 1)
        if (le := getattr(item, "le", None)) is not None:
            high = min(high, float(le))
        if (lt := getattr(item, "lt", None)) is not None:
            high = min(high, float(lt) - 1)
    return min(max(preferred, low), high)
