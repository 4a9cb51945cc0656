"""`Annotated` dependencies shared by the user service's routes (style.md habit 9)."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from user_service.bootstrap import Deps


def get_deps(request: Request) -> Deps:
    """The service's dependencies, put on `app.state` by the lifespan."""
    return cast(Deps, request.app.state.deps)


DepsDep = Annotated[Deps, Depends(get_deps)]
