"""The interactive API docs at `/docs`: Swagger UI over the merged document, every file of it
served by the gateway itself, so the page works offline and its CSP names no other host.

Swagger UI's bundle and stylesheet come from the `fastapi-offline` package (Swagger UI 5, which
renders the OpenAPI 3.1 documents FastAPI writes; `swagger-ui-bundle` on PyPI still ships 4.x,
which does not). The page starts it from a file of ours (`START_JS`), not an inline script, so
the docs CSP allows scripts from 'self' only (security.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import swagger_ui_default_parameters
from fastapi.responses import FileResponse, HTMLResponse, Response

from kit.errors import Problem

DOCS_PATH = "/docs"
ASSETS = f"{DOCS_PATH}/assets"
OPENAPI_URL = "/openapi.json"
SWAGGER_DIR = Path(str(files("fastapi_offline") / "static"))
# The assets change only with the package: a browser may keep them an hour.
CACHE = "public, max-age=3600"


@dataclass(frozen=True, slots=True)
class Asset:
    path: Path
    media_type: str


# Only what the page uses, by name: nothing else of the package's directory is reachable.
FILES: dict[str, Asset] = {
    "swagger-ui-bundle.js": Asset(
        SWAGGER_DIR / "swagger-ui-bundle.js", "text/javascript; charset=utf-8"
    ),
    "swagger-ui.css": Asset(SWAGGER_DIR / "swagger-ui.css", "text/css; charset=utf-8"),
    "favicon.png": Asset(SWAGGER_DIR / "favicon.png", "image/png"),
}

# FastAPI's own defaults, with the document's URL from the page (one place names it) and no
# online validator (Swagger UI would otherwise ask validator.swagger.io about the document).
_PARAMETERS = json.dumps(swagger_ui_default_parameters | {"validatorUrl": None})
START_JS = f"""\
"use strict";
(() => {{
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle(Object.assign({_PARAMETERS}, {{
    url: root.dataset.openapiUrl,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  }}));
}})();
"""

PAGE = f"""\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>shop API</title>
<link rel="icon" type="image/png" href="{ASSETS}/favicon.png">
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{OPENAPI_URL}"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script src="{ASSETS}/start.js"></script>
</body>
</html>
"""

router = APIRouter(include_in_schema=False)


@router.get(DOCS_PATH)
async def docs() -> HTMLResponse:
    """Swagger UI over the merged document."""
    return HTMLResponse(PAGE)


@router.get(f"{ASSETS}/{{name}}")
async def docs_asset(name: str) -> Response:
    """One file of the docs page, with its content type (the gateway sends `nosniff`)."""
    if name == "start.js":
        return Response(
            START_JS, media_type="text/javascript; charset=utf-8", headers={"cache-control": CACHE}
        )
    asset = FILES.get(name)
    if asset is None:
        raise Problem(404, "NOT_FOUND", "Not found", detail=f"No docs asset {name!r}.")
    return FileResponse(asset.path, media_type=asset.media_type, headers={"cache-control": CACHE})
