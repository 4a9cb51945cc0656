"""HTTP routes of the analytics service: four areas, each its own router (reached through the
gateway under `/api/v1/recommendations`, `/promotions`, `/reports` and `/audit`)."""

from __future__ import annotations

from fastapi import APIRouter

recommendations = APIRouter(prefix="/api/v1/recommendations", tags=["recommendations"])
promotions = APIRouter(prefix="/api/v1/promotions", tags=["promotions"])
reports = APIRouter(prefix="/api/v1/reports", tags=["reports"])
audit = APIRouter(prefix="/api/v1/audit", tags=["audit"])

ROUTERS = [recommendations, promotions, reports, audit]
