"""HTTP routes of the user service, under `/api/v1/users` (reached through the gateway)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/users", tags=["users"])

ROUTERS = [router]
