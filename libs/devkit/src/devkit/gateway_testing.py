"""Test helpers for the gateway and the e2e and security suites: serving an ASGI app on a real
port inside the test's event loop (devkit.testing's `serving`, `free_port`), and a raw HTTP/1.1
request whose target goes out byte for byte.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

from devkit.testing import free_port, serving

__all__ = ["RawResponse", "free_port", "raw_request", "serving"]


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]  # names lower-case, the last of repeated fields
    body: bytes


async def raw_request(
    base_url: str, target: bytes, headers: dict[str, str] | None = None, method: str = "GET"
) -> RawResponse:
    """`<method> <target>` with the target's bytes exactly as given (one request, no body).

    httpx (like every URL library) resolves `..` and re-quotes before sending, which would test
    the client instead of the server: this writes the request line itself.
    """
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    fields = [f"Host: {host}:{port}", "Connection: close"]
    fields += [f"{name}: {value}" for name, value in (headers or {}).items()]
    head = f"{method} ".encode() + target + b" HTTP/1.1\r\n" + "\r\n".join(fields).encode()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head + b"\r\n\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=20)
    finally:
        writer.close()
    status_head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = status_head.decode("latin-1").split("\r\n")
    parsed = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    if parsed.get("transfer-encoding") == "chunked":
        body = _dechunked(body)
    return RawResponse(int(status_line.split()[1]), parsed, body)


def _dechunked(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += body[:size]
        body = body[size + 2 :]
    return bytes(out)
