"""The edge's rules (pure, no I/O): api.md's role table, headers a client may not send, and the
security headers every response carries.

`ROLE_RULES` is the one place the gateway's role checks live. Only routes that admit a subset of
roles are listed: a request to one of them needs a verified token (else 401) of one of the roles
(else 403 and an `AccessDenied` event). Routes open to any signed-in role ("own" resources,
`/users/me`, notifications) are left to the owning service, which answers 401 without a token
and checks ownership itself; services check roles again (defence in depth).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ADMIN = ("Admin",)
STAFF = ("Manager", "Admin")
CUSTOMER = ("Customer",)


@dataclass(frozen=True, slots=True)
class RoleRule:
    """`methods` on paths matching `pattern` are for `roles` only."""

    methods: frozenset[str]
    pattern: re.Pattern[str]
    roles: tuple[str, ...]


def rule(methods: str, path: str, roles: tuple[str, ...]) -> RoleRule:
    """`rule("PATCH DELETE", "/users/{id}", ADMIN)`: `{…}` is one path segment."""
    regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path))
    return RoleRule(frozenset(methods.split()), re.compile(f"^/api/v1{regex}/?$"), roles)


# api.md, "who" column: the routes that admit only some roles.
ROLE_RULES: tuple[RoleRule, ...] = (
    rule("GET POST", "/users", ADMIN),
    rule("PATCH DELETE", "/users/{userId}", ADMIN),
    rule("POST", "/products", ADMIN),
    rule("PATCH DELETE", "/products/{productId}", ADMIN),
    rule("POST", "/products/{productId}/stock", ADMIN),
    rule("POST", "/orders/precheck", CUSTOMER),
    rule("POST", "/orders", CUSTOMER),
    rule("POST", "/orders/{orderId}/approve", STAFF),
    rule("POST", "/orders/{orderId}/reject", STAFF),
    rule("GET", "/recommendations", CUSTOMER),
    rule("GET", "/promotions", CUSTOMER),
    rule("GET", "/reports/sales", STAFF),
    rule("GET", "/reports/funnel", STAFF),
    rule("GET", "/audit", STAFF),  # Admin, Manager read-only (audit only has GET)
    # Answered by the gateway itself (ops.py), which checks the role again.
    rule("GET", "/ops/dlq", ADMIN),
    rule("POST", "/ops/dlq/{service}/redrive", ADMIN),
)


def required_roles(
    method: str, path: str, rules: Iterable[RoleRule] = ROLE_RULES
) -> tuple[str, ...] | None:
    """The roles `method path` is restricted to, None when the gateway leaves it to the service."""
    method = "GET" if method.upper() == "HEAD" else method.upper()
    for entry in rules:
        if method in entry.methods and entry.pattern.match(path):
            return entry.roles
    return None


# Identity travels only as the bearer token, verified again by each service: a client-sent
# X-User-Id (or any X-User-*) must never reach a service that might be tempted to trust it.
IDENTITY_HEADER_PREFIX = "x-user-"


def is_identity_header(name: str) -> bool:
    return name.lower().startswith(IDENTITY_HEADER_PREFIX)


# A JSON API never needs to load anything: the strictest policy. The docs page (docs.py: Swagger
# UI served by the gateway itself) gets one that allows exactly what it loads, from 'self' only.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# The web front end (web.py): its own scripts and styles only, no inline script, API calls to
# the same origin; nothing may frame it.
WEB_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
HSTS = "max-age=31536000; includeSubDomains"
DOCS_PATHS = frozenset({"/docs"})
SYSTEM_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"})


def content_security_policy(path: str, *, web: bool = False) -> str:
    """The docs page's, the web app's (every page outside the API, when it is served), or none."""
    if path in DOCS_PATHS:
        return DOCS_CSP
    if web and not path.startswith("/api/") and path not in SYSTEM_PATHS:
        return WEB_CSP
    return API_CSP


def security_headers(path: str, *, hsts: bool, web: bool = False) -> dict[str, str]:
    """What every gateway response carries (HSTS only when served over TLS: see the README)."""
    headers = {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": content_security_policy(path, web=web),
        "Cross-Origin-Resource-Policy": "same-origin",
    }
    if hsts:
        headers["Strict-Transport-Security"] = HSTS
    return headers


class SecurityHeadersMiddleware:
    """Sets `security_headers` on every response, errors and proxied answers included."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False, web: bool = False) -> None:
        self.app = app
        self.hsts = hsts
        self.web = web

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope.get("path", ""), hsts=self.hsts, web=self.web)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
