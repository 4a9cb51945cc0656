"""The operations API the gateway answers itself (api.md, `ops`): dead letters, Admin only.

Roles are checked twice: `guard` applies the edge's role table (401 / 403 with `AccessDenied`),
as for every proxied route, and `require_roles("Admin")` in each route, so that the route stays
Admin-only even if the table were to change.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from bus import DeadLetter
from contracts.types import Service
from gateway_service.auth import guard
from gateway_service.dead_letters import DeadLetterOps, ServiceDeadLetters
from gateway_service.routing import SERVICES
from kit.auth import Principal, require_roles
from kit.errors import PROBLEM_RESPONSES, problem_response
from kit.models import DEFAULT_LIMIT, Limit, ResponseModel
from kit.request_context import actor_from_request, request_id

router = APIRouter(prefix="/api/v1/ops", tags=["ops"], dependencies=[Depends(guard)])

Admin = Annotated[Principal, require_roles("Admin")]

RESPONSES: dict[int | str, dict[str, object]] = {
    401: PROBLEM_RESPONSES[401],
    403: PROBLEM_RESPONSES[403],
    404: problem_response("SERVICE_NOT_FOUND: no service of that name"),
    503: problem_response(
        "SERVICE_UNAVAILABLE (the broker did not answer or confirm in time), or "
        "AUDIT_UNAVAILABLE; with Retry-After (nothing unconfirmed left the DLQ)"
    ),
}


class DeadLetterOut(ResponseModel):
    """One dead letter: the event it carried and why it failed."""

    id: str | None
    type: str | None
    routing_key: str | None
    error: str | None
    error_type: str | None
    attempts: int | None
    failed_at: str | None
    handler: str | None
    correlation_id: str | None

    @classmethod
    def of(cls, letter: DeadLetter) -> DeadLetterOut:
        return cls(
            id=letter.id,
            type=letter.type,
            routing_key=letter.routing_key,
            error=letter.error,
            error_type=letter.error_type,
            attempts=letter.attempts,
            failed_at=letter.failed_at,
            handler=letter.handler,
            correlation_id=letter.correlation_id,
        )


class ServiceDeadLettersOut(ResponseModel):
    """A service's DLQ: `count` ready in it, the first `limit` of them in `messages`."""

    service: Service
    count: int
    messages: list[DeadLetterOut]

    @classmethod
    def of(cls, found: ServiceDeadLetters) -> ServiceDeadLettersOut:
        messages = [DeadLetterOut.of(letter) for letter in found.messages]
        return cls(service=found.service, count=found.count, messages=messages)


class DeadLettersOut(ResponseModel):
    """Dead letters per service."""

    items: list[ServiceDeadLettersOut]


class RedriveOut(ResponseModel):
    """How many dead letters went back to the service's queue."""

    service: Service
    redriven: int


def dead_letter_ops(request: Request) -> DeadLetterOps:
    ops: DeadLetterOps = request.app.state.dead_letters
    return ops


Ops = Annotated[DeadLetterOps, Depends(dead_letter_ops)]


@router.get("/dlq", response_model=DeadLettersOut, responses=RESPONSES)
async def list_dlq(
    _: Admin,
    ops: Ops,
    limit: Limit = DEFAULT_LIMIT,
    service: Annotated[str | None, Query(description="Only this service")] = None,
) -> DeadLettersOut:
    """Dead letters per service (left in place), up to `limit` each."""
    services = (service,) if service is not None else SERVICES
    found = [await ops.listing(name, limit) for name in services]
    return DeadLettersOut(items=[ServiceDeadLettersOut.of(f) for f in found])


@router.post("/dlq/{service}/redrive", response_model=RedriveOut, responses=RESPONSES)
async def redrive_dlq(request: Request, principal: Admin, ops: Ops, service: str) -> RedriveOut:
    """Move a service's dead letters back to its queue, audited first (DeadLettersRedriven)."""
    actor = actor_from_request(request, principal)
    moved = await ops.redrive(service, actor, request_id(request) or principal.user_id)
    return RedriveOut(service=service, redriven=moved)
