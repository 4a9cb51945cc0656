"""HTTP routes of the payment service, under `/api/v1/payments` (reached through the gateway)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/payments", tags=["payments"])

ROUTERS = [router]
