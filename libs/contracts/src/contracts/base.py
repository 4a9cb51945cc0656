"""Base classes shared by every contract: camelCase on the wire, snake_case in Python, frozen."""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ContractModel(BaseModel):
    """A frozen value object. Consumers ignore unknown fields so producers can add fields."""

    model_config = ConfigDict(
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
    )


def routing_key_for(event_type: str) -> str:
    """`OrderPlaced` → `order.placed` (events.md: the type in dotted lower case)."""
    return re.sub(r"(?<!^)(?=[A-Z])", ".", event_type).lower()


class Event(ContractModel):
    """The `data` of an envelope. Subclasses are registered with `@event` in `registry`."""

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1
    SOURCE: ClassVar[str]
    ROUTING_KEY: ClassVar[str]
