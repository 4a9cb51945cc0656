"""The web front end (`web/dist`, built by `make run` / `make test`), served by the gateway at `/`.

Only when `GATEWAY_WEB_DIR` names a built app. A file of the build is served as it is
(`/assets/*` are content-hashed, so cached for a year); any other GET for a page
(`Accept: text/html`) outside the API answers `index.html`, so that the app's own routes
(`/orders/…`, `/admin/users`) survive a reload or a shared link. Everything else stays a 404
problem: the API keeps its own namespace, and a script asking for a missing file is not handed
a page.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from kit.errors import not_found

API_PREFIXES = ("api/", "assets/")
IMMUTABLE = "public, max-age=31536000, immutable"


def web_router(dist: Path) -> APIRouter:
    """GET/HEAD `/{path}`: a file of `dist`, else `index.html` for a page, else 404."""
    root = dist.resolve()
    index = root / "index.html"
    router = APIRouter(include_in_schema=False)

    @router.api_route("/{path:path}", methods=["GET", "HEAD"])
    async def web(request: Request, path: str) -> FileResponse:
        """A file of the built app, or the app itself for one of its routes."""
        if path:
            candidate = (root / path).resolve()
            if candidate.is_relative_to(root) and candidate.is_file():
                cache = IMMUTABLE if path.startswith("assets/") else "no-cache"
                return FileResponse(candidate, headers={"Cache-Control": cache})
        wants_page = "text/html" in request.headers.get("accept", "")
        if path.startswith(API_PREFIXES) or not (wants_page or not path):
            raise not_found(detail=f"No API at /{path}.")
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    return router
