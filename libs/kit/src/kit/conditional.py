"""Conditional GETs (RFC 9110 §8.8.3, §13.1.2): an entity tag on a representation, and a 304
Not Modified without a body for a client that already holds it (pollers, the browser's cache).

    tag = weak_etag(order.version)
    if none_match(request.headers.get("if-none-match"), tag):
        return not_modified({"ETag": tag})

The tag is weak: it stands for the state the representation was made from (a version that moves
with every write), not for its bytes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from starlette.responses import Response

_ENTITY_TAG = re.compile(r'(?:W/)?"[^"]*"')


def weak_etag(version: int | str) -> str:
    """`W/"<version>"`."""
    return f'W/"{version}"'


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def none_match(if_none_match: str | None, etag: str) -> bool:
    """True when an `If-None-Match` value names `etag` (weak comparison, as §13.1.2 wants for
    it) or is `*`: the client's copy is the current one."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = _opaque(etag)
    return any(_opaque(tag) == wanted for tag in _ENTITY_TAG.findall(if_none_match))


def not_modified(headers: Mapping[str, str]) -> Response:
    """A 304 with `headers` (the ETag and whatever a 200 would have carried about caching)."""
    return Response(status_code=304, headers=dict(headers))
