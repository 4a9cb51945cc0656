"""HTTP routes of the inventory service, under `/api/v1/products` (reached through the gateway)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/products", tags=["products"])

ROUTERS = [router]
