"""``/docs``: Swagger UI over ``/openapi.json``, from the files the ``swagger-ui-py`` package ships.

No request leaves the machine: the page loads Swagger UI's script and style sheets from
this server (``/docs/assets/...``), not from a CDN, and turns off Swagger UI's online
validator badge (``validatorUrl: null``), which would fetch from validator.swagger.io. The
page has no inline script (so a Content-Security-Policy of ``script-src 'self'`` allows it):
Swagger UI starts from ``/docs/assets/start-swagger-ui.js``, served from the text below.
``swagger-ui-py`` is used for its files only (Swagger UI 5, which reads OpenAPI 3.1), found
without importing it (its module would import Jinja2 and PyYAML for nothing).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from aiohttp import web

ASSETS_PATH = "/docs/assets"

START_SCRIPT = "start-swagger-ui.js"
START_SCRIPT_TEXT = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout",
  });
});
"""

SWAGGER_FILES = {
    "swagger-ui.css": "text/css",
    "index.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}
"""The files of the package's ``static`` folder the page uses, and their types; no other file is served."""

ASSET_NAMES = (*SWAGGER_FILES, START_SCRIPT)

PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>awe API - Swagger UI</title>
<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
<link rel="stylesheet" href="{ASSETS_PATH}/index.css">
<link rel="icon" type="image/png" href="{ASSETS_PATH}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
<script src="{ASSETS_PATH}/swagger-ui-standalone-preset.js"></script>
<script src="{ASSETS_PATH}/{START_SCRIPT}"></script>
</body>
</html>
"""


def swagger_ui_folder() -> Path:
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is missing: pip install swagger-ui-py")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


async def docs_page(request: web.Request) -> web.Response:
    """Swagger UI: read the API's description and try its endpoints from the browser."""
    return web.Response(text=PAGE, content_type="text/html")


async def docs_asset(request: web.Request) -> web.StreamResponse:
    """One of the files the Swagger UI page loads."""
    name = request.match_info["name"]
    if name == START_SCRIPT:
        return web.Response(text=START_SCRIPT_TEXT, content_type="text/javascript")
    if name not in SWAGGER_FILES:
        raise web.HTTPNotFound(text=f"no asset {name!r}; the page uses {', '.join(ASSET_NAMES)}")
    response = web.FileResponse(swagger_ui_folder() / name, headers={"Cache-Control": "public, max-age=3600"})
    response.content_type = SWAGGER_FILES[name]
    return response
