"""HTTP routes of the order service, under `/api/v1/orders` (reached through the gateway)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/orders", tags=["orders"])

ROUTERS = [router]
