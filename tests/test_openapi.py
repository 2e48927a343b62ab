"""``/openapi.json`` describes every route, truly; ``/docs`` is Swagger UI served from this machine.

The description is checked three ways: it is a valid OpenAPI 3.1 document
(``openapi-spec-validator``); every route the application registers is in it; and
real answers of every operation, from a real engine, have a status the description
lists for that operation and a body its schema accepts (``openapi-schema-validator``).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from engine import InProcessEngine
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from awe.http import create_app

JSON = {"Content-Type": "application/json"}
SPEC_URI = "urn:awe:openapi"
COUNTER_JSON = {
    "graph_id": "counter_json",
    "entry_point": "bump",
    "nodes": [{"name": "bump", "tool": "test.add", "args": {"key": "count", "by": 1}}],
    "edges": [{"from": "bump", "to": "END"}],
}


def _pointer(*parts: str) -> str:
    return "".join("/" + urllib.parse.quote(p.replace("~", "~0").replace("/", "~1"), safe="") for p in parts)


class Conformance:
    """Checks answers against the description and remembers which operations answered."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.registry = Registry().with_resource(SPEC_URI, Resource(contents=spec, specification=DRAFT202012))
        self.answered: set[tuple[str, str]] = set()

    def check(self, method: str, template: str, status: int, content_type: str, body: bytes) -> None:
        operation = self.spec["paths"][template][method.lower()]
        assert str(status) in operation["responses"], f"{method} {template} answered {status}: {body[:300]!r}"
        response = operation["responses"][str(status)]
        content = response.get("content", {})
        assert content_type in content, f"{method} {template} {status}: {content_type} is not in {list(content)}"
        if content_type == "application/json" and "schema" in content[content_type]:
            where = _pointer("paths", template, method.lower(), "responses", str(status), "content", content_type)
            validator = OAS31Validator({"$ref": f"{SPEC_URI}#{where}/schema"}, registry=self.registry)
            errors = [
                f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(json.loads(body))
            ]
            assert not errors, f"{method} {template} {status} does not match its schema: {errors[:5]}"
        self.answered.add((method.upper(), template))

    async def call(
        self, session: aiohttp.ClientSession, base: str, method: str, template: str, expect: int, **kwargs: Any
    ) -> Any:
        """Request ``template`` (its ``{name}`` filled from ``path=``), check the answer, return its JSON (or text)."""
        path = template.format(**kwargs.pop("path", {}))
        async with session.request(method, f"{base}{path}", **kwargs) as r:
            body = await r.read()
            self.check(method, template, r.status, r.content_type, body)
            assert r.status == expect, (method, path, r.status, body[:300])
            return json.loads(body) if r.content_type == "application/json" else body.decode()


async def test_the_description_is_valid_and_lists_every_route_of_the_application(engine: InProcessEngine) -> None:
    status, spec = await engine.request("GET", "/openapi.json")
    assert status == 200
    validate_spec(spec)
    assert spec["openapi"].startswith("3.1")

    assert engine.coordinator is not None
    app = create_app(engine.coordinator.coordinator)  # the function the coordinator's server is built with
    served = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}
    # aiohttp answers HEAD wherever it answers GET; the description lists the GET.
    served = {(m, p) for m, p in served if not (m == "HEAD" and ("GET", p) in served)}
    described = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    assert served - described == set(), "routes the description misses"
    assert described - served == set(), "described routes the application does not serve"
    assert len({op["operationId"] for ops in spec["paths"].values() for op in ops.values()}) == len(described)


@pytest.fixture
async def tools_engine(tmp_path: Path) -> AsyncIterator[InProcessEngine]:
    """The sample graphs and the JSON graphs' test tools (so that a graph can be created and deleted)."""
    async with InProcessEngine(tmp_path, graphs=("sample_graphs", "json_tools")) as engine:
        yield await engine.start(workers=2)


async def test_every_operation_answers_as_described(tools_engine: InProcessEngine) -> None:
    engine = tools_engine
    status, spec = await engine.request("GET", "/openapi.json")
    assert status == 200
    check = Conformance(spec)
    session, url = engine.session, engine.url
    assert session is not None

    async def call(method: str, template: str, expect: int, **kwargs: Any) -> Any:
        return await check.call(session, url, method, template, expect, **kwargs)

    # -- runs --------------------------------------------------------------------------------
    body = {"graph_id": "counter_loop", "initial_state": {"count": 0, "target": 2}, "run_id": "doc-run"}
    started = await call("POST", "/graph/run", 202, json=body)
    assert started["created"] is True
    again = await call("POST", "/graph/run", 200, json=body)
    assert again["created"] is False
    waited = await call("POST", "/graph/run", 200, json={**body, "run_id": "doc-wait", "wait": True})
    assert waited["status"] == "completed" and waited["state"]["count"] == 2
    await call("POST", "/graph/run", 400, json={"graph_id": "counter_loop", "initial_state": []})
    await call("POST", "/graph/run", 400, data=b"{not json", headers={"Content-Type": "application/json"})
    await call("POST", "/graph/run", 404, json={"graph_id": "nope"})
    await engine.wait_finished("doc-run")

    run = {"path": {"run_id": "doc-run"}}
    missing = {"path": {"run_id": "no-such-run"}}
    assert (await call("GET", "/graph/state/{run_id}", 200, **run))["state"]["count"] == 2
    await call("GET", "/graph/state/{run_id}", 404, **missing)
    await call("GET", "/runs/{run_id}", 200, **run)
    await call("GET", "/runs/{run_id}", 404, **missing)
    assert len((await call("GET", "/runs", 200))["runs"]) == 2
    assert "next_cursor" in await call("GET", "/runs", 200, params={"since": "", "status": "completed"})
    await call("GET", "/runs", 400, params={"limit": "0"})
    await call("GET", "/runs", 400, params={"status": "sleeping"})
    assert len((await call("GET", "/runs/{run_id}/steps", 200, **run))["steps"]) == 2
    await call("GET", "/runs/{run_id}/steps", 404, **missing)
    history = await call("GET", "/runs/{run_id}/history", 200, params={"limit": "1"}, **run)
    assert history["next_cursor"] == "1" and history["steps"][0]["state_after"]["count"] == 1
    await call("GET", "/runs/{run_id}/history", 400, params={"cursor": "x"}, **run)
    await call("GET", "/runs/{run_id}/history", 404, **missing)

    forked = await call("POST", "/runs/{run_id}/fork", 201, json={"step": 1, "run_id": "doc-fork"}, **run)
    assert forked["forked_from"]["run_id"] == "doc-run"
    await call("POST", "/runs/{run_id}/fork", 400, json={"step": 99}, **run)
    await call("POST", "/runs/{run_id}/fork", 404, json={"step": 1}, **missing)
    await engine.wait_finished("doc-fork")

    # A paused run: resumed, then another one cancelled.
    await call(
        "POST", "/graph/run", 202, json={"graph_id": "approval", "initial_state": {"release": "1.0"}, "run_id": "ask"}
    )
    await _wait_for(engine, "ask", "paused")
    asked = await call("GET", "/runs/{run_id}", 200, path={"run_id": "ask"})
    assert asked["pause"]["payload"] == {"question": "ship 1.0?"}
    resumed = await call("POST", "/runs/{run_id}/resume", 200, json={"answer": True}, path={"run_id": "ask"})
    assert resumed["status"] in ("queued", "running", "completed")
    await engine.wait_finished("ask")
    await call("POST", "/runs/{run_id}/resume", 409, json={}, path={"run_id": "ask"})
    await call("POST", "/runs/{run_id}/resume", 400, json={"by": ""}, path={"run_id": "ask"})
    await call("POST", "/runs/{run_id}/resume", 404, json={}, **missing)
    held = {"graph_id": "counter_loop", "initial_state": {"count": 0, "target": 1}, "interrupt_before": ["increment"]}
    await call("POST", "/graph/run", 202, json={**held, "run_id": "held"})
    await _wait_for(engine, "held", "paused")
    await call("POST", "/runs/{run_id}/resume", 200, path={"run_id": "held"})  # no body: go on as it is
    assert (await engine.wait_finished("held"))["state"]["count"] == 1
    await call(
        "POST", "/graph/run", 202, json={"graph_id": "approval", "initial_state": {"release": "2"}, "run_id": "drop"}
    )
    await _wait_for(engine, "drop", "paused")
    assert (await call("POST", "/runs/{run_id}/cancel", 200, path={"run_id": "drop"}))["status"] == "cancelled"
    await call("POST", "/runs/{run_id}/cancel", 409, path={"run_id": "drop"})
    await call("POST", "/runs/{run_id}/cancel", 404, **missing)

    # The event stream: a WebSocket upgrade (101), or a JSON error before it.
    async with session.ws_connect(f"{url}/ws/logs/doc-run") as ws:
        events = [message.json() async for message in ws]
    assert events[-1]["event"] == "run_completed"
    event_schema = OAS31Validator({"$ref": f"{SPEC_URI}#/components/schemas/Event"}, registry=check.registry)
    for event in events:
        event_schema.validate(event)
    check.answered.add(("GET", "/ws/logs/{run_id}"))  # 101: no body to check
    await call("GET", "/ws/logs/{run_id}", 400, **run)  # a plain GET, no upgrade
    await call("GET", "/ws/logs/{run_id}", 404, **missing)

    # -- graphs ----------------------------------------------------------------------------------
    graphs = await call("GET", "/graphs", 200)
    assert "counter_loop" in {g["graph_id"] for g in graphs["graphs"]}
    assert (await call("GET", "/graphs/{graph_id}", 200, path={"graph_id": "counter_loop"}))["source"] == "python"
    await call("GET", "/graphs/{graph_id}", 404, path={"graph_id": "nope"})
    problems = await call("POST", "/graph/create", 400, json={"graph_id": "x"})
    assert problems["problems"]
    await call("POST", "/graph/create", 409, json={**COUNTER_JSON, "graph_id": "counter_loop"})
    assert (await call("POST", "/graph/create", 201, json=COUNTER_JSON)) == {"graph_id": "counter_json", "version": 1}
    await call("DELETE", "/graphs/{graph_id}", 200, path={"graph_id": "counter_json"})
    await call("DELETE", "/graphs/{graph_id}", 409, path={"graph_id": "counter_loop"})
    await call("DELETE", "/graphs/{graph_id}", 404, path={"graph_id": "nope"})

    # -- the engine and the docs --------------------------------------------------------------------
    await call("GET", "/tools", 200)
    assert len((await call("GET", "/workers", 200))["workers"]) == 2
    assert (await call("GET", "/healthz", 200))["status"] == "ok"
    assert "awe_steps_total" in await call("GET", "/metrics", 200)
    await call("GET", "/openapi.json", 200)
    await call("GET", "/docs", 200)
    await call("GET", "/docs/assets/{name}", 200, path={"name": "start-swagger-ui.js"})
    await call("GET", "/docs/assets/{name}", 404, path={"name": "swagger-editor.js"})
    page = await call("GET", "/", 200)
    script = re.search(r'src="/ui/assets/([^"]+)"', page)
    assert script is not None, page
    await call("GET", "/ui/assets/{name}", 200, path={"name": script.group(1)})
    await call("GET", "/ui/assets/{name}", 404, path={"name": "nothing.js"})

    described = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert described - check.answered == set(), "operations this test did not call"


async def _wait_for(engine: InProcessEngine, run_id: str, status: str) -> None:
    async def reached() -> bool:
        return (await engine.state(run_id))["status"] == status

    await engine.wait_until(reached, what=f"run {run_id} to be {status}")


async def test_a_wrong_method_is_a_json_405_naming_the_methods_the_path_takes(engine: InProcessEngine) -> None:
    assert engine.session is not None
    async with engine.session.delete(f"{engine.url}/graph/run") as r:
        assert (r.status, r.content_type) == (405, "application/json")
        assert r.headers["Allow"] == "POST"
        assert (await r.json())["error"] == "Method Not Allowed"


@pytest.mark.parametrize(
    "body,words",
    [
        (b"[]", "must be a JSON object"),
        (b'{"graph_id": "counter_loop", "max_steps": 0}', "'max_steps' must be a whole number"),
        (b'{"graph_id": "counter_loop", "max_steps": true}', "'max_steps' must be a whole number"),
        (b'{"graph_id": "counter_loop", "timeout": 5}', "'timeout' goes with"),
        (b'{"graph_id": "counter_loop", "wait": true, "timeout": 301}', "'timeout' must be a number"),
        (b'{"graph_id": "counter_loop", "interrupt_before": ["a", 1]}', "'interrupt_before' must be a list"),
        (b'{"graph_id": "counter_loop", "run_id": "ok\\n"}', "'run_id' must be"),
    ],
)
async def test_request_bodies_failing_their_schema_get_json_400s(
    engine: InProcessEngine, body: bytes, words: str
) -> None:
    assert engine.session is not None
    async with engine.session.post(f"{engine.url}/graph/run", data=body, headers=JSON) as r:
        assert (r.status, r.content_type) == (400, "application/json")
        assert words in (await r.json())["error"]


async def test_a_missing_required_field_is_named_with_what_it_is_for(engine: InProcessEngine) -> None:
    status, body = await engine.request("POST", "/runs/anything/fork", json={"state_update": {}})
    assert status == 400 and body["error"].startswith("'step' is required: the step whose state"), body


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            if values.get("src"):
                self.urls.append(str(values["src"]))
            else:
                self.inline_scripts += 1
        if tag == "link" and values.get("href"):
            self.urls.append(str(values["href"]))


async def test_docs_is_swagger_ui_loading_only_files_this_server_answers(engine: InProcessEngine) -> None:
    assert engine.session is not None
    async with engine.session.get(f"{engine.url}/docs") as r:
        assert (r.status, r.content_type) == (200, "text/html")
        page = await r.text()
    assets = _Assets()
    assets.feed(page)
    assert assets.inline_scripts == 0
    assert any(u.endswith("swagger-ui-bundle.js") for u in assets.urls)
    origin = urllib.parse.urlsplit(engine.url)
    for url in assets.urls:
        absolute = urllib.parse.urlsplit(urllib.parse.urljoin(f"{engine.url}/docs", url))
        assert (absolute.scheme, absolute.netloc) == (origin.scheme, origin.netloc), url
        async with engine.session.get(absolute.geturl()) as r:
            assert r.status == 200, url
            text = await r.read()
            assert text, url
            if url.endswith(".js"):
                assert r.content_type == "text/javascript"
    async with engine.session.get(f"{engine.url}/docs/assets/start-swagger-ui.js") as r:
        start = await r.text()
    assert 'url: "/openapi.json"' in start and "validatorUrl: null" in start and "http" not in start
