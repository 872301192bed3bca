"""``/docs`` (Swagger UI) and ``/openapi.json``: the API described, for viewers only.

FastAPI's own routes for these take no dependencies, so the app turns them off
(``docs_url=None, openapi_url=None``) and these stand in for them. Swagger UI's script and
stylesheet come from the installed swagger-ui-bundle package, which the app mounts at
:data:`ASSETS`, not from a CDN: the page works offline.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html

from monitor.api import access
from monitor.api.errors import JSONResponse

ASSETS = "/docs/assets"

router = APIRouter(dependencies=[Depends(access.viewer)], include_in_schema=False)


@router.get("/openapi.json", response_class=JSONResponse)
async def openapi(request: Request) -> Response:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def docs(request: Request) -> Response:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=f"{request.app.title} - API",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
    )
