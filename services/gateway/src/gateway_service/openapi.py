"""The merged OpenAPI document: every service's paths and schemas behind one URL.

Services are built independently, so two of them may define a schema with the same name and a
different shape (`Item`, `Address`). Such names are renamed `<service>_<Name>` in every service
that defines them, and that service's `$ref`s are rewritten; identical definitions stay shared
(`HTTPValidationError`, the problem model). Paths outside `/api/v1/` (each service's own
`/healthz`, `/readyz`) are not reachable through the gateway and are left out. Every operation
with a path parameter also documents the edge's 400 `INVALID_PATH` (paths.py): a parameter
value can spell a path the gateway refuses before any service sees it.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Mapping
from typing import Any

import httpx
import structlog

from gateway_service.routing import API_PREFIX
from kit.errors import problem_response

log = structlog.get_logger("gateway.openapi")

type Doc = dict[str, Any]
REF_PREFIX = "#/components/schemas/"
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
INVALID_PATH_RESPONSE = problem_response(
    "INVALID_PATH: a path parameter made the path non-canonical (dot segment, encoded slash or "
    "dot, backslash, control or non-ASCII character), refused at the gateway"
)


def _rewrite_refs(node: Any, renames: Mapping[str, str]) -> Any:
    """A copy of `node` with `$ref`s to renamed schemas pointing at the new names."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(REF_PREFIX):
                name = value[len(REF_PREFIX) :]
                out[key] = REF_PREFIX + renames.get(name, name)
            else:
                out[key] = _rewrite_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, renames) for v in node]
    return node


def _schemas(doc: Doc) -> dict[str, Any]:
    return dict(doc.get("components", {}).get("schemas", {}))


def _colliding_names(docs: Mapping[str, Doc]) -> set[str]:
    """Names defined differently by two services, after renaming what already collides.

    Renaming one schema changes the body of every schema that refers to it, which can make two
    formerly identical definitions differ: iterate until nothing changes.
    """
    colliding: set[str] = set()
    while True:
        bodies: dict[str, set[str]] = {}
        for service, doc in docs.items():
            renames = {n: f"{service}_{n}" for n in colliding}
            for name, body in _schemas(doc).items():
                if name in colliding:
                    continue
                rewritten = json.dumps(_rewrite_refs(body, renames), sort_keys=True)
                bodies.setdefault(name, set()).add(rewritten)
        new = {name for name, variants in bodies.items() if len(variants) > 1}
        if not new:
            return colliding
        colliding |= new


def merge(base: Doc, docs: Mapping[str, Doc]) -> Doc:
    """`base` (the gateway's own document) plus the API paths and schemas of every service."""
    merged = copy.deepcopy(base)
    paths: dict[str, Any] = merged.setdefault("paths", {})
    components: dict[str, Any] = merged.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    tags: list[dict[str, Any]] = list(merged.get("tags", []))
    colliding = _colliding_names(docs)
    for service, doc in sorted(docs.items()):
        renames = {n: f"{service}_{n}" for n in colliding if n in _schemas(doc)}
        for path, item in doc.get("paths", {}).items():
            if path.startswith(API_PREFIX):
                paths[path] = _rewrite_refs(item, renames)
        for name, body in _schemas(doc).items():
            schemas[renames.get(name, name)] = _rewrite_refs(body, renames)
        for kind, entries in doc.get("components", {}).items():
            if kind != "schemas" and isinstance(entries, dict):
                for key, value in entries.items():
                    components.setdefault(kind, {}).setdefault(key, value)
        for tag in doc.get("tags", []):
            if tag.get("name") not in {t.get("name") for t in tags}:
                tags.append(tag)
    if tags:
        merged["tags"] = tags
    for path, item in paths.items():
        if "{" in path:
            _document_invalid_path(item)
    merged["paths"] = dict(sorted(paths.items()))
    components["schemas"] = dict(sorted(schemas.items()))
    return merged


def _document_invalid_path(item: dict[str, Any]) -> None:
    for method, operation in item.items():
        if method in HTTP_METHODS and isinstance(operation, dict):
            responses = operation.setdefault("responses", {})
            responses.setdefault("400", copy.deepcopy(INVALID_PATH_RESPONSE))


class MergedOpenAPI:
    """Fetches each service's document, merges, caches for `ttl` seconds.

    A service that does not answer keeps its last good document; one never seen is left out and
    listed under `info.x-unavailable-services`, so the document always answers.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        urls: Mapping[str, str],
        *,
        ttl: float = 5.0,
        timeout: float = 2.0,
    ) -> None:
        self._client = client
        self._urls = dict(urls)
        self._ttl = ttl
        self._timeout = timeout
        self._last_good: dict[str, Doc] = {}
        self._cached: Doc | None = None
        self._cached_at = 0.0
        self._lock = asyncio.Lock()

    async def _fetch(self, service: str) -> Doc | None:
        url = self._urls[service].rstrip("/") + "/openapi.json"
        try:
            response = await self._client.get(url, timeout=self._timeout)
            response.raise_for_status()
            doc = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("gateway.openapi_unavailable", upstream=service, error=str(exc))
            return None
        return doc if isinstance(doc, dict) else None

    async def document(self, base: Doc) -> Doc:
        """The merged document, at most `ttl` seconds old."""
        async with self._lock:
            if self._cached is not None and time.monotonic() - self._cached_at < self._ttl:
                return self._cached
            services = list(self._urls)
            fetched = await asyncio.gather(*(self._fetch(s) for s in services))
            missing: list[str] = []
            for service, doc in zip(services, fetched, strict=True):
                if doc is not None:
                    self._last_good[service] = doc
                elif service not in self._last_good:
                    missing.append(service)
            merged = merge(base, self._last_good)
            if missing:
                merged.setdefault("info", {})["x-unavailable-services"] = missing
            self._cached, self._cached_at = merged, time.monotonic()
            return merged
