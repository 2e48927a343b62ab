"""Who may talk to the API, and from where: the middlewares that run before any handler.

In the order a request meets them:

* :func:`security_headers`: every answer, errors included, says ``nosniff``, no framing, no
  referrer, and carries a Content-Security-Policy unless its handler set one of its own (the web page
  does); an answer is never a document a hostile page can frame or a script can sniff.
* :func:`allowed_host`: the ``Host`` header must name this server (loopback names, the bound host,
  ``--allowed-hosts``): a page on ``evil.example`` whose name an attacker re-points at 127.0.0.1 (DNS
  rebinding) sends ``Host: evil.example`` and is refused with 421.
* :func:`cors`: a request a browser sends from a page of another origin (it says ``Origin``) is
  refused with 403 unless that origin is configured (``--cors-origins``): a foreign page's form POST,
  bodiless POST or WebSocket would otherwise act with the access of the user's machine. A configured
  origin's preflight is answered and its requests get ``Access-Control-Allow-Origin``.
* :func:`bearer_token`: with a token configured, every route but ``/healthz``, ``/openapi.json`` and the
  files of the web page and of ``/docs`` (the same everywhere, no data) requires ``Authorization: Bearer
  <token>`` (a WebSocket may send ``?token=`` instead: browsers cannot set its
  headers). Compared in constant time; missing and wrong get the same 401, so a caller learns nothing.
* :func:`json_only`: a body sent to the API must be ``application/json``. A ``text/plain`` or form
  POST is what a foreign page can send without a CORS preflight; refused with 415, it never runs.

The policy itself (:class:`ApiPolicy`) is built once from the settings.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import hdrs, web

from awe.settings import Settings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC_RESOURCES = web.AppKey("public_resources", frozenset[web.AbstractResource])
"""The paths answered without the token (see :attr:`awe.http.routing.Route.public`): ``/healthz``, so a
supervisor checks health without a secret, ``/openapi.json``, and the files of the web page and ``/docs``."""

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "*"})

API_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
"""For JSON and text answers: nothing in them may load or run anything, nor be framed."""

DOCS_CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        # Swagger UI sets style attributes from its script (React), which 'self' alone would block.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
"""For ``/docs``: Swagger UI's files come from this server (``/docs/assets``) and it calls only this API."""

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

CORS_METHODS = "GET, POST, DELETE, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type"
CORS_MAX_AGE = "600"


@dataclass(frozen=True)
class ApiPolicy:
    """What the middlewares enforce, from the settings (and the token read from wherever it was given)."""

    token: str | None = None
    allowed_hosts: frozenset[str] = LOOPBACK_HOSTS
    """Host names (lower case, no port, IPv6 without brackets) the API answers; ``*`` answers any."""
    cors_origins: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings, token: str | None) -> ApiPolicy:
        hosts = set(LOOPBACK_HOSTS) | {_host_name(h) for h in settings.allowed_hosts}
        if settings.host not in WILDCARD_HOSTS:
            hosts.add(_host_name(settings.host))
        if "*" in settings.allowed_hosts:
            hosts.add("*")
        origins = frozenset(o.rstrip("/") for o in settings.cors_origins)
        return cls(token=token, allowed_hosts=frozenset(hosts), cors_origins=origins)

    def host_allowed(self, host_header: str | None) -> bool:
        if "*" in self.allowed_hosts:
            return True
        return host_header is not None and _host_name(host_header) in self.allowed_hosts

    def token_matches(self, request: web.Request) -> bool:
        assert self.token is not None
        expected = self.token.encode()
        given = _bearer(request.headers.get(hdrs.AUTHORIZATION, ""))
        if given is None and request.headers.get(hdrs.UPGRADE, "").lower() == "websocket":
            given = request.query.get("token")
        # compare_digest on bytes: its time does not depend on where the two first differ.
        return given is not None and hmac.compare_digest(given.encode(), expected)


def _bearer(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _host_name(host: str) -> str:
    """``Example.com:8000`` -> ``example.com``; ``[::1]:8000`` -> ``::1``; ``::1`` -> ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        return host.partition(":")[0]
    return host


def _same_origin(origin: str, request: web.Request) -> bool:
    """Whether the page that sent the request was served by this server (its origin names the Host)."""
    _, _, rest = origin.partition("://")
    return rest.rstrip("/").lower() == request.headers.get(hdrs.HOST, "").lower()


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the API on this machine."""
    name = _host_name(host)
    return name in LOOPBACK_HOSTS or name.startswith("127.")


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


POLICY = web.AppKey("policy", ApiPolicy)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not response.prepared:  # a WebSocket's 101 has gone out already
        docs = request.path == "/docs" or request.path.startswith("/docs/")
        response.headers.setdefault(
            "Content-Security-Policy", DOCS_CONTENT_SECURITY_POLICY if docs else API_CONTENT_SECURITY_POLICY
        )
    return response


@web.middleware
async def allowed_host(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.app[POLICY].host_allowed(request.headers.get(hdrs.HOST)):
        return _error(
            421,
            "this server does not answer for the host in the request's Host header; "
            "its operator can allow it with --allowed-hosts",
        )
    return await handler(request)


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None or _same_origin(origin, request):
        return await handler(request)
    if origin.rstrip("/") not in request.app[POLICY].cors_origins:
        # A page of another site: its POST or WebSocket would act with this machine's access.
        return _error(
            403, f"requests from pages of {origin} are refused; the operator can allow it with --cors-origins"
        )
    if request.method == "OPTIONS" and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers:
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": CORS_METHODS,
                "Access-Control-Allow-Headers": CORS_HEADERS,
                "Access-Control-Max-Age": CORS_MAX_AGE,
                "Vary": "Origin",
            },
        )
    response = await handler(request)
    if not response.prepared:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return response


@web.middleware
async def bearer_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    policy = request.app[POLICY]
    public = request.match_info.route.resource in request.app[PUBLIC_RESOURCES]
    if policy.token is not None and not public and not policy.token_matches(request):
        return _error(
            401,
            "authentication required: send the API token as 'Authorization: Bearer <token>'",
            **{"WWW-Authenticate": 'Bearer realm="awe"'},
        )
    return await handler(request)


@web.middleware
async def json_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    # An empty body is read as no body whatever its declared type (POST /runs/{id}/cancel); a foreign page's
    # bodiless POST is the cors middleware's to refuse.
    has_body = request.body_exists and request.content_length != 0
    if request.method in BODY_METHODS and has_body and request.content_type != "application/json":
        return _error(415, f"the body must be JSON sent as Content-Type: application/json, not {request.content_type}")
    return await handler(request)


BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

MIDDLEWARES = (security_headers, allowed_host, cors, bearer_token, json_only)
"""Outermost first: every answer gets the headers, and a refused request reaches no handler."""
