"""The web page: ``/`` serves its ``index.html``, ``/ui/assets/{name}`` its built assets.

The page is a React application whose sources are in ``web/`` at the top of the repository;
``npm run build`` there writes it to ``awe/http/static/``, which is shipped in the package, so
serving it needs no Node and no network. It talks only to this API (same origin): the REST
routes and ``/ws/logs/{run_id}``. Its assets live under ``/ui/`` (Vite's ``base`` in
``web/vite.config.ts``), where no API path can meet them.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).parent / "static"
ASSETS_DIR = STATIC_DIR / "assets"
REBUILD = "run `npm ci && npm run build` in web/"
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
"""The page's own policy: its scripts, styles and requests only from this origin, no inline script or
style, no eval. Whatever a run's state holds is shown as text; if some ever reached the page as markup,
the browser would still refuse to run it. The browser tests run the page under it."""


def add_page_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/ui/assets/{name}", asset)


async def index(request: web.Request) -> web.StreamResponse:
    page = STATIC_DIR / "index.html"
    if not page.is_file():
        raise web.HTTPInternalServerError(text=f"the web page is not built: {page} is missing; {REBUILD}")
    # The assets' names change with their content; the page that names them must never be stale.
    return web.FileResponse(
        page, headers={"Cache-Control": "no-cache", "Content-Security-Policy": CONTENT_SECURITY_POLICY}
    )


async def asset(request: web.Request) -> web.StreamResponse:
    """One built file, by name only (a name cannot hold a ``/``; ``..`` resolves outside and is refused)."""
    name = request.match_info["name"]
    path = (ASSETS_DIR / name).resolve()
    if path.parent != ASSETS_DIR.resolve() or not path.is_file():
        raise web.HTTPNotFound(text=f"no asset {name!r} in the web page's build; reload / (or {REBUILD})")
    return web.FileResponse(path, headers={"Cache-Control": "public, max-age=31536000, immutable"})
