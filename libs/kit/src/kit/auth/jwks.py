"""Where verification keys come from: the user service's JWKS document, cached.

`JwksKeySource(url)` fetches `{"keys": [...]}` with httpx on first use and keeps the RSA keys by
`kid` for `ttl` seconds (`JWKS_TTL_SECONDS`, at most 5 min): the first lookup after that fetches
the document again, so a key the user service stops publishing stops verifying within `ttl`
(api.md, "Signing keys"). While the user service cannot be reached the last keys it published
stay in use (nothing can be retired meanwhile), and the fetch is retried after
`failure_backoff`. A token signed with a `kid` it does not know triggers one refetch (the user
service rotated its key), but at most once per `min_refresh_interval` seconds, so a flood of
tokens with made-up kids cannot turn into a flood of requests to the user service.
`StaticKeySource` serves fixed keys (tests, or a service that signs its own tokens).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import httpx
import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from kit.tracing_clients import TracingTransport

log = structlog.get_logger("kit.auth.jwks")

DEFAULT_MIN_REFRESH_INTERVAL = 30.0
DEFAULT_TTL = 300.0
# After a failed fetch (the user service is still starting, in local mode) retry sooner.
DEFAULT_FAILURE_BACKOFF = 2.0
DEFAULT_TIMEOUT = 3.0


class KeySource(Protocol):
    """Gives the public key for a `kid`, or None when there is no such key."""

    async def get_key(self, kid: str) -> RSAPublicKey | None: ...


def parse_jwks(document: Mapping[str, Any]) -> dict[str, RSAPublicKey]:
    """The RSA signing keys of a JWKS document by `kid` (others, and broken entries, skipped)."""
    keys: dict[str, RSAPublicKey] = {}
    entries = document.get("keys")
    if not isinstance(entries, list):
        return keys
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" or not entry.get("kid"):
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg", "RS256") != "RS256":
            continue
        try:
            key = jwt.PyJWK(entry, algorithm="RS256").key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            log.warning("jwks.bad_key", kid=entry.get("kid"))
            continue
        if isinstance(key, RSAPublicKey):
            keys[str(entry["kid"])] = key
    return keys


class PublicKeyHolder(Protocol):
    """What `StaticKeySource` needs of a key object (`kit.auth.signing.SigningKey` fits)."""

    @property
    def kid(self) -> str: ...

    @property
    def public_key(self) -> RSAPublicKey: ...


class StaticKeySource:
    """Fixed public keys by `kid`."""

    def __init__(self, keys: Mapping[str, RSAPublicKey] | Iterable[PublicKeyHolder]) -> None:
        self.keys: dict[str, RSAPublicKey] = {}
        if isinstance(keys, Mapping):
            self.keys.update(keys)
        else:
            for holder in keys:
                self.keys[holder.kid] = holder.public_key

    async def get_key(self, kid: str) -> RSAPublicKey | None:
        return self.keys.get(kid)

    async def aclose(self) -> None:
        return None


class JwksKeySource:
    """The JWKS at `url`, fetched lazily and refreshed when an unknown `kid` shows up."""

    def __init__(
        self,
        url: str,
        *,
        ttl: float = DEFAULT_TTL,
        min_refresh_interval: float = DEFAULT_MIN_REFRESH_INTERVAL,
        failure_backoff: float = DEFAULT_FAILURE_BACKOFF,
        timeout: float = DEFAULT_TIMEOUT,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self.ttl = ttl
        self.min_refresh_interval = min_refresh_interval
        self.failure_backoff = failure_backoff
        self.timeout = timeout
        self._client = client
        self._owns_client = client is None
        self._keys: dict[str, RSAPublicKey] = {}
        self._fetched_at: float | None = None
        self._last_failed = False
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def get_key(self, kid: str) -> RSAPublicKey | None:
        key = self._keys.get(kid)
        if key is not None and not self._expired():
            return key
        async with self._lock:
            # Another request may have refreshed meanwhile.
            if self._expired() or (kid not in self._keys and self._may_refresh()):
                await self._refresh()
            return self._keys.get(kid)

    def _since_fetch(self) -> float:
        return float("inf") if self._fetched_at is None else time.monotonic() - self._fetched_at

    def _expired(self) -> bool:
        """The cached document is older than `ttl` (after a failed fetch: due for a retry)."""
        due = self.failure_backoff if self._last_failed else self.ttl
        return self._since_fetch() >= due

    def _may_refresh(self) -> bool:
        """An unknown kid may refetch: not more often than `min_refresh_interval`."""
        wait = self.failure_backoff if self._last_failed else self.min_refresh_interval
        return self._since_fetch() >= wait

    async def _refresh(self) -> None:
        # Counted as an attempt even when it fails: a down user service is not hammered either.
        self._fetched_at = time.monotonic()
        self.fetches += 1
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, transport=TracingTransport())
        try:
            response = await self._client.get(self.url, timeout=self.timeout)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            self._last_failed = True
            log.warning("jwks.fetch_failed", url=self.url, error=repr(exc))
            return
        keys = parse_jwks(document if isinstance(document, dict) else {})
        self._last_failed = not keys
        if keys:
            self._keys = keys
        log.info("jwks.fetched", url=self.url, kids=sorted(keys))

    async def aclose(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None
