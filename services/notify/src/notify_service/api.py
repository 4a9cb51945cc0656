"""HTTP routes of the notify service, under `/api/v1/notifications` (via the gateway)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])

ROUTERS = [router]
