"""A small app built with kit's factory, and keys and tokens to call it with."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, ClassVar

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from pydantic_settings import SettingsConfigDict
from pymongo.errors import OperationFailure, ServerSelectionTimeoutError

from kit.app import create_app
from kit.auth import (
    CurrentUser,
    OptionalUser,
    Principal,
    SigningKey,
    ensure_owner,
    issue_access_token,
    require_roles,
    use_static_keys,
)
from kit.errors import Problem, invalid_state, not_found, too_many_requests
from kit.models import Cursor, Limit, Page, ResponseModel, StrictModel
from kit.settings import ServiceSettings
from kit.transactions import Conflict


class DemoSettings(ServiceSettings):
    service_name: ClassVar[str] = "demo"
    model_config = SettingsConfigDict(env_prefix="DEMO_")
    port: int = 8099


class Line(StrictModel):
    product_id: str
    quantity: int


class NewThing(StrictModel):
    name: str
    password: str | None = None
    lines: list[Line] = []


class Thing(ResponseModel):
    thing_id: str
    name: str


router = APIRouter()
OWNER = "u-owner"


@router.post("/things", status_code=201)
async def create_thing(body: NewThing) -> Thing:
    """Echo a validated body."""
    return Thing(thing_id="t1", name=body.name)


@router.get("/things")
async def list_things(limit: Limit = 20, cursor: Cursor = None) -> Page[Thing]:
    """A page of `limit` things."""
    return Page[Thing](items=[Thing(thing_id=str(i), name="x") for i in range(limit)])


@router.get("/boom")
async def boom() -> None:
    """Fails with an unexpected error."""
    raise RuntimeError("database password is hunter2")


@router.get("/contended")
async def contended(kind: str) -> None:
    """Fails as a busy or unreachable database (or a lost version race) would."""
    if kind == "conflict":
        raise OperationFailure("Write conflict during plan execution", code=112)
    if kind == "down":
        raise ServerSelectionTimeoutError("no servers (password=hunter2)")
    if kind == "race":
        raise Conflict("version moved on")
    raise OperationFailure("unknown operator: $where", code=2)


@router.get("/state")
async def state() -> None:
    raise invalid_state("PAID")


@router.get("/slow-down")
async def slow_down() -> None:
    raise too_many_requests(30)


@router.get("/me")
async def me(user: CurrentUser) -> dict[str, Any]:
    return {"userId": user.user_id, "role": user.role}


@router.get("/maybe")
async def maybe(user: OptionalUser) -> dict[str, Any]:
    return {"userId": user.user_id if user else None}


@router.get("/admin", dependencies=[require_roles("Admin")])
async def admin_only() -> dict[str, str]:
    return {"ok": "yes"}


@router.get("/approve")
async def approve(user: Annotated[Principal, require_roles("Manager", "Admin")]) -> dict[str, str]:
    return {"by": user.role}


@router.get("/orders/{order_id}")
async def get_order(order_id: str, user: CurrentUser) -> dict[str, str]:
    ensure_owner(user, OWNER, not_found("ORDER_NOT_FOUND", f"No order {order_id}."))
    return {"orderId": order_id}


@router.get("/problem")
async def problem(request: Request) -> None:
    raise Problem(409, "PROFILE_INCOMPLETE", "Profile incomplete", missing=["address"])


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="session")
def other_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def settings() -> DemoSettings:
    return DemoSettings(env="test", log_level="WARNING")


@pytest.fixture
def app(settings: DemoSettings, signing_key: SigningKey) -> FastAPI:
    application = create_app(settings, title="demo", routers=[router])
    use_static_keys(application, signing_key)
    return application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.fixture
def token(signing_key: SigningKey, settings: DemoSettings) -> Any:
    def make(sub: str = "u1", role: str = "Customer", **kwargs: Any) -> str:
        return issue_access_token(
            signing_key,
            sub=sub,
            role=role,
            issuer=kwargs.pop("issuer", settings.jwt_issuer),
            audience=kwargs.pop("audience", settings.jwt_audience),
            **kwargs,
        )

    return make
