"""Revocation: access tokens older than their user's current token version are refused.

The user service bumps a user's `token_version` when it changes their role, disables or deletes
them (in the same write), and signs every access token with the version it had (`ver` claim;
none = 0). Every process keeps the current version of each user whose version moved recently in
memory (`TokenVersions`) and `TokenVerifier` refuses a token below it, so every `CurrentUser`,
`require_roles` and the gateway's guard refuse a revoked token without a database read.

`TokenVersionFeed` keeps the table current: each process polls the user service's
`GET /internal/users/token-versions?since=<cursor>` (internal credential) every
`TOKEN_VERSIONS_POLL_SECONDS` (2 s; api.md allows 5), so every process of every service, however
many instances, sees each change within about two seconds, and a process that starts catches up
with its first poll (the user service answers every change within an access token's lifetime:
older tokens have expired anyway).

Failure modes: until its first poll succeeded a process refuses every token (fail closed, as it
would without the JWKS). Once it has synchronised, a failed poll keeps the table as it was and
is retried at the next tick: the user service is the only writer of versions, so while it is
down nothing can have been revoked; a process cut off from a running user service keeps
accepting what it accepted until the feed comes back (logged as `token_versions.poll_failed`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from kit.tracing_clients import TracingTransport

log = structlog.get_logger("kit.auth.revocation")

TOKEN_VERSIONS_PATH = "/internal/users/token-versions"
DEFAULT_TIMEOUT = 2.0


def token_versions_url(jwks_url: str) -> str:
    """The token-versions route of the service that publishes the JWKS (the user service)."""
    parts = urlsplit(jwks_url)
    return f"{parts.scheme}://{parts.netloc}{TOKEN_VERSIONS_PATH}"


class TokenVersions:
    """The minimum token version of each user whose version moved (others: 0)."""

    def __init__(self, *, synchronised: bool = False) -> None:
        self._minimum: dict[str, int] = {}
        self.synchronised = synchronised

    def admits(self, user_id: str, version: int) -> bool:
        """True when a token of `user_id` with version `version` is not revoked."""
        return self.synchronised and version >= self._minimum.get(user_id, 0)

    def apply(self, versions: Iterable[tuple[str, int]]) -> None:
        """Learn current versions (never moving one back: polls overlap and may repeat)."""
        for user_id, version in versions:
            if version > self._minimum.get(user_id, 0):
                self._minimum[user_id] = version

    def __len__(self) -> int:
        return len(self._minimum)


def parse_versions(document: Mapping[str, Any]) -> tuple[list[tuple[str, int]], str | None]:
    """`{items: [{userId, version}], cursor}` → the versions and the next cursor."""
    items = document.get("items")
    cursor = document.get("cursor")
    if not isinstance(items, list) or not (cursor is None or isinstance(cursor, str)):
        raise ValueError("not a token-versions document")
    versions = []
    for item in items:
        user_id, version = item.get("userId"), item.get("version")
        if not isinstance(user_id, str) or type(version) is not int:
            raise ValueError("not a token-versions item")
        versions.append((user_id, version))
    return versions, cursor


class TokenVersionFeed:
    """Polls the user service for version changes since the last cursor into `versions`."""

    def __init__(
        self,
        url: str,
        versions: TokenVersions,
        *,
        headers: Mapping[str, str],
        timeout: float = DEFAULT_TIMEOUT,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self.versions = versions
        self.headers = dict(headers)
        self.timeout = timeout
        self.cursor: str | None = None
        self.failing = False
        self._client = client
        self._owns_client = client is None

    async def poll(self) -> bool:
        """One poll; False (and the table unchanged) when the user service did not answer."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, transport=TracingTransport())
        params = {"since": self.cursor} if self.cursor else {}
        try:
            response = await self._client.get(self.url, params=params, headers=self.headers)
            response.raise_for_status()
            versions, cursor = parse_versions(response.json())
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            if not self.failing:  # once per outage, not once a second
                log.warning("token_versions.poll_failed", url=self.url, error=repr(exc))
            self.failing = True
            return False
        if self.failing:
            log.info("token_versions.poll_recovered", url=self.url)
            self.failing = False
        self.versions.apply(versions)
        if not self.versions.synchronised:
            self.versions.synchronised = True
            log.info("token_versions.synchronised", url=self.url, users=len(self.versions))
        self.cursor = cursor
        return True

    async def aclose(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None
