"""Bad requests get a JSON error with the right status, and nothing is stored for them."""

from __future__ import annotations

import aiohttp
import pytest
from engine import InProcessEngine

BAD_RUN_REQUESTS = [
    # (body bytes, status, words the error must contain)
    (b'{"graph_id": "code_review_agent", "initial_state": {', 400, "not valid JSON"),
    (b"", 400, "must be a JSON object"),
    (b"[1, 2, 3]", 400, "must be a JSON object"),
    (b'"code_review_agent"', 400, "must be a JSON object"),
    (b'{"graph_id": "no_such_graph", "initial_state": {}}', 404, "unknown graph 'no_such_graph'"),
    (b'{"graph_id": 42, "initial_state": {}}', 400, "'graph_id' must be a string"),
    (b'{"initial_state": {}}', 400, "'graph_id' is required"),
    (b'{"graph_id": "counter_loop", "initial_state": [1]}', 400, "'initial_state' must be a JSON object"),
    (b'{"graph_id": "counter_loop", "initial_state": "x"}', 400, "'initial_state' must be a JSON object"),
    (b'{"graph_id": "counter_loop", "initial_state": null}', 400, "'initial_state' must be a JSON object"),
    (b'{"graph_id": "counter_loop", "intial_state": {}}', 400, "unknown fields ['intial_state']"),
    (b'{"graph_id": "counter_loop", "initial_state": {}, "run_id": "has space"}', 400, "'run_id' must be"),
    (b"\xff\xfe not utf8", 400, "not valid JSON"),
]


async def test_bad_run_requests_get_json_errors_and_store_nothing(engine: InProcessEngine) -> None:
    assert engine.session is not None
    for body, status, words in BAD_RUN_REQUESTS:
        async with engine.session.post(
            f"{engine.url}/graph/run", data=body, headers={"Content-Type": "application/json"}
        ) as r:
            assert r.status == status, (body, r.status, await r.text())
            assert r.content_type == "application/json"
            error = (await r.json())["error"]
            assert words in error, (body, error)
    status, runs = await engine.request("GET", "/runs")
    assert status == 200 and runs["runs"] == []
    # The coordinator is unharmed: a good request still works.
    run_id = await engine.start_run("counter_loop", {"count": 0, "target": 2})
    assert (await engine.wait_finished(run_id))["status"] == "completed"


@pytest.mark.parametrize(
    "method,path,status,words",
    [
        ("GET", "/graph/state/not-a-run", 404, "unknown run 'not-a-run'"),
        ("GET", "/runs/not-a-run/steps", 404, "unknown run 'not-a-run'"),
        ("GET", "/ws/logs/not-a-run", 404, "unknown run 'not-a-run'"),
        ("GET", "/graphs/nope", 404, "unknown graph 'nope'"),
        ("GET", "/runs?status=sleeping", 400, "unknown status 'sleeping'"),
        ("GET", "/runs?limit=zero", 400, "'limit' must be an integer"),
        ("GET", "/runs?limit=0", 400, "between 1 and 1000"),
        ("GET", "/no/such/path", 404, "Not Found"),
        ("DELETE", "/graph/run", 405, "Method Not Allowed"),
    ],
)
async def test_bad_lookups_get_json_errors(
    engine: InProcessEngine, method: str, path: str, status: int, words: str
) -> None:
    got, body = await engine.request(method, path)
    assert got == status, body
    assert words in body["error"]


async def test_unknown_run_websocket_is_refused_before_upgrade(engine: InProcessEngine) -> None:
    assert engine.session is not None
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await engine.session.ws_connect(f"{engine.url}/ws/logs/nope")
    assert caught.value.status == 404
