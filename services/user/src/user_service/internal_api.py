"""Internal routes of the user service, for other services only (never routed by the gateway).

`/internal/*` sits outside `/api/v1`: the gateway routes only `/api/v1/<area>`, and every route here
answers 401 to a caller without the internal credential (kit.internal), so a request that reaches
the service port directly gets nothing the gateway would not give it. Events never carry a
payment method's provider token, so the payment service resolves it here at authorization time.
Every process of every service polls `token-versions` to refuse revoked access tokens
(kit.auth.revocation).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from kit.errors import PROBLEM_RESPONSES
from kit.internal import RequireInternal
from kit.models import decode_cursor, encode_cursor
from user_service import commands, domain
from user_service.deps import DepsDep
from user_service.schemas import PaymentMethodToken, TokenVersion, TokenVersions

internal = APIRouter(prefix="/internal/users", tags=["internal"], dependencies=[RequireInternal])


@internal.get(
    "/{user_id}/payment-methods/{payment_method_id}",
    response_model=PaymentMethodToken,
    responses=PROBLEM_RESPONSES,
)
async def resolve_payment_method(
    user_id: str, payment_method_id: str, deps: DepsDep
) -> PaymentMethodToken:
    """A user's payment method with its provider token (payment service only)."""
    user, method = await commands.payment_method(deps, user_id, payment_method_id)
    return PaymentMethodToken(
        payment_method_id=payment_method_id,
        token=method["token"],
        brand=method.get("brand"),
        last4=method.get("last4"),
        account_created_at=user.get("created_at"),
        account_region=user.get("region"),
    )


@internal.get("/token-versions", response_model=TokenVersions, responses=PROBLEM_RESPONSES)
async def token_versions(
    deps: DepsDep, since: Annotated[str | None, Query(max_length=200)] = None
) -> TokenVersions:
    """Users whose access tokens below `version` are revoked, changed since the cursor (all
    within an access token's lifetime without one): every process polls this every
    TOKEN_VERSIONS_POLL_SECONDS (2 s), so it is one indexed query answering a handful of rows."""
    cursor_at = (decode_cursor(since) or {}).get("at")
    at, versions = await commands.token_versions(
        deps, cursor_at if isinstance(cursor_at, datetime) else None
    )
    return TokenVersions(
        items=[TokenVersion(user_id=user_id, version=version) for user_id, version in versions],
        cursor=encode_cursor({"at": at - domain.TOKEN_VERSIONS_OVERLAP}),
    )
