"""The edge's path rule: api.md "Edge rules → Paths" (`checked_path`, pure), and the middleware
that applies it to every request before anything else in the app sees the path.

A path either is already in its one canonical form, or is refused (400 `INVALID_PATH`) before
any routing, auth or forwarding. The gateway never repairs a path: whatever it would resolve,
a service, an HTTP client or a file system behind it might resolve differently, and every
spelling that needs resolving is one a legitimate API client never sends. So the decoded path
the gateway routes on, the one the role table matches, and the raw bytes it forwards all name
the same resource, and no spelling climbs out of `/api/v1/<area>/`.

Checked on the raw bytes as received (`scope["raw_path"]`) and on the decoded path the server
handed to the router (`scope["path"]`); the two must agree. Refused:

- `.` and `..` segments, and any segment made only of dots (`...` means `..` to some systems);
- encoded slashes and dots (`%2f`, `%2e`, any case), encoded `%` (`%25`, so nothing is ever
  decoded twice: `%252e`, `%2500`), backslashes and `;` (path parameters: `..;/` is a dot
  segment to some servers), raw or encoded;
- NULs, control characters and spaces, raw or encoded; any byte outside printable ASCII, raw
  or encoded (ids and areas are ASCII; non-ASCII only buys Unicode look-alikes of `.` and `/`
  and overlong UTF-8 such as `%c0%ae`);
- encoded `?` and `#`: the request's URL would no longer split where the server split it;
- a malformed escape (`%zz`, IIS's `%u002e`) and the characters RFC 3986 keeps out of a path
  (`"<>[]^{|}` and backquote; `#` and `?` never reach the path raw);
- empty segments (`//`): a single trailing slash is allowed (services redirect it), no other;
- a target that is not a path (`*`, absolute-form), or one longer than `MAX_PATH_BYTES`.

Other percent-escapes (`%3A`, `%40`, `%41`) pass: they decode to a printable character that is
no separator here, and the service decodes them exactly as the gateway did.
"""

from __future__ import annotations

import string
from urllib.parse import unquote

from starlette.types import ASGIApp, Receive, Scope, Send

from kit.errors import Problem

# Far above any API path (the longest is a few ids deep), far below the servers' own limits.
MAX_PATH_BYTES = 2048

# RFC 3986 `pchar` and `/`, without `;` (path parameters); `%` only as the start of an escape.
_RAW_ALLOWED = frozenset((string.ascii_letters + string.digits + "-._~!$&'()*+,=:@/%").encode())
# What an escape may stand for: a printable ASCII character that is no separator or escape.
_ENCODED_FORBIDDEN = frozenset(b"/.\\%;?#")
_HEX = frozenset(string.hexdigits.encode())


class InvalidPath(ValueError):
    """The path is not in canonical form; `reason` says why (for the problem's detail)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def checked_path(raw_path: bytes, path: str) -> str:
    """The path to route on, when `raw_path` (as received) and `path` (decoded) are canonical.

    Raises `InvalidPath` otherwise. The result equals `path` itself: a canonical path needs no
    normalising, which is what makes it safe to forward `raw_path` unchanged.
    """
    if len(raw_path) > MAX_PATH_BYTES:
        raise InvalidPath(f"The path is longer than {MAX_PATH_BYTES} bytes.")
    if not raw_path.startswith(b"/"):
        raise InvalidPath("The request target must be a path starting with '/'.")
    _check_bytes(raw_path)
    decoded = unquote(raw_path.decode("ascii"))
    if decoded != path:
        raise InvalidPath("The path does not decode to the path the server parsed.")
    _check_segments(decoded)
    return decoded


def _check_bytes(raw_path: bytes) -> None:
    """Only RFC 3986 path characters, and escapes of harmless printable ASCII."""
    index = 0
    while index < len(raw_path):
        byte = raw_path[index]
        if byte not in _RAW_ALLOWED:
            raise InvalidPath(f"The path contains a forbidden character (byte 0x{byte:02x}).")
        if byte == ord("%"):
            escape = raw_path[index + 1 : index + 3]
            if len(escape) != 2 or not set(escape) <= _HEX:
                raise InvalidPath("The path contains a malformed percent-escape.")
            encoded = int(escape, 16)
            if not 0x21 <= encoded <= 0x7E or encoded in _ENCODED_FORBIDDEN:
                raise InvalidPath(f"The path encodes a forbidden character (%{escape.decode()}).")
            index += 3
        else:
            index += 1


def _check_segments(path: str) -> None:
    """No dot segments, no empty segments (a trailing slash aside)."""
    segments = path[1:].split("/")
    if segments[-1] == "":
        segments.pop()  # `/` itself, or one trailing slash
    for segment in segments:
        if segment == "":
            raise InvalidPath("The path contains an empty segment ('//').")
        if set(segment) == {"."}:
            raise InvalidPath("The path contains a dot segment ('.' or '..').")


def invalid_path(reason: str) -> Problem:
    return Problem(400, "INVALID_PATH", "Invalid path", detail=reason)


class PathCheckMiddleware:
    """400 `INVALID_PATH` for a non-canonical path, before routing, auth or forwarding.

    Installed inside kit's request context (main.py), so the refusal carries `X-Request-Id`
    and the security headers like any other answer. The gateway serves no WebSocket; other
    scopes pass untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            try:
                checked_path(scope.get("raw_path") or path.encode(), path)
            except InvalidPath as exc:
                await invalid_path(exc.reason).response()(scope, receive, send)
                return
        await self.app(scope, receive, send)
