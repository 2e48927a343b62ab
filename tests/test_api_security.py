"""The API's defences, on a real engine over real HTTP: the token, Host and Origin checks, JSON-only bodies,
security headers, and each limit reached with its status, leaving the engine serving other runs."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from engine import TESTS_DIR, InProcessEngine

from awe.testing import Client

pytestmark = pytest.mark.asyncio(loop_scope="module")

TOKEN = "s3cret-token-for-the-tests-0123456789"
WRONG = "not-the-token-for-the-tests-987654321"
LIMITS = {
    "max_body_bytes": 100_000,
    "max_state_bytes": 20_000,
    "max_runs_in_flight": 3,
    "max_runs_in_flight_per_graph": 2,
    "max_websockets": 3,
    "max_websockets_per_run": 2,
    "max_events_per_run": 25,
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InProcessEngine]:
    """One engine with a token and small limits for the whole module (each test leaves no run unfinished)."""
    eng = InProcessEngine(tmp_path_factory.mktemp("secure"), graphs=("sample_graphs", "limit_graphs"))
    eng.settings = eng.settings.replace(token=TOKEN, **LIMITS)
    eng.token = TOKEN
    async with eng:
        yield await eng.start(workers=1)


async def completes(engine: InProcessEngine) -> None:
    """The engine still serves a normal run to its end."""
    run_id = await engine.start_run("counter_loop", {"count": 0, "target": 2})
    assert (await engine.wait_finished(run_id))["status"] == "completed"


async def answer(engine: InProcessEngine, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any], Any]:
    """Status, JSON body and headers of a request sent without the engine session's token."""
    async with aiohttp.ClientSession() as session, session.request(method, f"{engine.url}{path}", **kwargs) as r:
        body = await r.json() if r.content_type == "application/json" else {"text": await r.text()}
        return r.status, body, r.headers


# -- the token ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", "/runs", None), ("GET", "/graphs", None), ("GET", "/metrics", None), ("POST", "/graph/run", {})],
)
async def test_without_or_with_a_wrong_token_every_endpoint_is_a_401_that_tells_nothing(
    engine: InProcessEngine, method: str, path: str, body: Any
) -> None:
    answers = []
    for headers in ({}, {"Authorization": f"Bearer {WRONG}"}, {"Authorization": TOKEN}):
        status, json_body, response_headers = await answer(engine, method, path, json=body, headers=headers)
        assert status == 401, json_body
        assert response_headers["WWW-Authenticate"].startswith("Bearer")
        answers.append(json_body)
    assert answers[0] == answers[1] == answers[2]  # missing, wrong and malformed look alike
    assert "Bearer" in answers[0]["error"]
    status, _, _ = await answer(engine, method, path, json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert status not in (401, 403, 415, 421), status


async def test_healthz_and_the_files_of_the_docs_answer_without_the_token(engine: InProcessEngine) -> None:
    status, body, _ = await answer(engine, "GET", "/healthz")
    assert status == 200 and body["status"] == "ok"
    async with aiohttp.ClientSession() as anonymous:
        for path in ("/docs", "/docs/assets/start-swagger-ui.js", "/openapi.json"):
            async with anonymous.get(f"{engine.url}{path}") as r:
                assert r.status == 200, path  # a browser loads them before anyone can give it the token
        async with anonymous.get(f"{engine.url}/docs/assets/no-such-file.js") as r:
            assert r.status == 404


async def test_the_description_declares_the_bearer_scheme(engine: InProcessEngine) -> None:
    status, spec = await engine.request("GET", "/openapi.json")
    assert status == 200
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert spec["security"] == [{"bearer": []}]
    assert spec["paths"]["/healthz"]["get"]["security"] == []
    assert "401" in spec["paths"]["/runs"]["get"]["responses"]


async def test_the_websocket_takes_the_token_as_a_header_or_a_query_parameter_and_nothing_else(
    engine: InProcessEngine,
) -> None:
    run_id = await engine.start_run("counter_loop", {"count": 0, "target": 1})
    await engine.wait_finished(run_id)
    ws_url = f"{engine.url}/ws/logs/{run_id}"
    async with aiohttp.ClientSession() as session:
        for url, headers in (
            (ws_url, {}),
            (ws_url, {"Authorization": f"Bearer {WRONG}"}),
            (f"{ws_url}?token={WRONG}", {}),
        ):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                async with session.ws_connect(url, headers=headers):
                    pass
            assert refused.value.status == 401
        for url, headers in ((ws_url, {"Authorization": f"Bearer {TOKEN}"}), (f"{ws_url}?token={TOKEN}", {})):
            async with session.ws_connect(url, headers=headers) as ws:
                events = [msg.json() async for msg in ws]
            assert events[-1]["event"] == "run_completed" and ws.close_code == 1000


# -- what a browser page of another site could send ---------------------------------------------


async def test_a_text_plain_post_is_refused_and_starts_nothing(engine: InProcessEngine) -> None:
    _, before = await engine.request("GET", "/runs")
    body = '{"graph_id": "counter_loop", "initial_state": {"count": 0, "target": 1}}'
    status, refused = await engine.request(
        "POST", "/graph/run", data=body, headers={"Content-Type": "text/plain;charset=UTF-8"}
    )
    assert status == 415 and "application/json" in refused["error"], refused
    _, after = await engine.request("GET", "/runs")
    assert after["runs"] == before["runs"]


async def test_a_foreign_host_header_is_refused(engine: InProcessEngine) -> None:
    status, body = await engine.request("GET", "/runs", headers={"Host": "attacker.example:8000"})
    assert status == 421 and "--allowed-hosts" in body["error"], body
    for host in (f"localhost:{engine.http_port}", f"127.0.0.1:{engine.http_port}", f"[::1]:{engine.http_port}"):
        status, body = await engine.request("GET", "/runs", headers={"Host": host})
        assert status == 200, (host, body)


async def test_a_page_of_another_origin_is_refused_even_with_the_token(engine: InProcessEngine) -> None:
    foreign = {"Origin": "http://attacker.example"}
    status, body = await engine.request("POST", "/runs/some-run/cancel", headers=foreign)
    assert status == 403 and "--cors-origins" in body["error"], body
    status, _ = await engine.request(
        "OPTIONS", "/graph/run", headers={**foreign, "Access-Control-Request-Method": "POST"}
    )
    assert status == 403
    same = {"Origin": f"http://127.0.0.1:{engine.http_port}"}  # the page served by the engine itself
    status, body = await engine.request("GET", "/runs", headers=same)
    assert status == 200 and "Access-Control-Allow-Origin" not in body


async def test_every_answer_carries_the_security_headers(engine: InProcessEngine) -> None:
    assert engine.session is not None
    for path, policy in (("/runs", "default-src 'none'"), ("/no/such/path", "default-src 'none'"), ("/docs", "")):
        async with engine.session.get(f"{engine.url}{path}") as r:
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert r.headers["X-Frame-Options"] == "DENY"
            assert r.headers["Referrer-Policy"] == "no-referrer"
            assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
            assert policy in r.headers["Content-Security-Policy"]
    async with engine.session.get(f"{engine.url}/docs") as r:
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]


async def test_ids_in_urls_must_match_their_pattern(engine: InProcessEngine) -> None:
    for path in ("/runs/bad%20id", "/graphs/..%2Fetc", "/runs/-leading-dash/steps", f"/runs/{'a' * 129}"):
        status, body = await engine.request("GET", path)
        assert status == 404 and "ids match" in body["error"], (path, body)
    status, body = await engine.request("POST", "/graph/run", json={"graph_id": "bad id\n", "initial_state": {}})
    assert status == 400 and "graph_id" in body["error"], body


# -- the limits --------------------------------------------------------------------------------


async def test_a_body_past_max_body_bytes_is_a_413(engine: InProcessEngine) -> None:
    big = {"graph_id": "counter_loop", "initial_state": {"blob": "x" * LIMITS["max_body_bytes"]}}
    status, body = await engine.request("POST", "/graph/run", json=big)
    assert status == 413, body
    await completes(engine)


async def test_an_initial_state_past_max_state_bytes_is_a_413(engine: InProcessEngine) -> None:
    state = {"count": 0, "target": 1, "blob": "x" * LIMITS["max_state_bytes"]}
    status, body = await engine.request("POST", "/graph/run", json={"graph_id": "counter_loop", "initial_state": state})
    assert status == 413 and "--max-state-bytes" in body["error"], body
    await completes(engine)


async def test_a_node_that_grows_the_state_past_max_state_bytes_fails_its_run(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("grow", {"size": LIMITS["max_state_bytes"] + 1})
    run = await engine.wait_finished(run_id)
    assert run["status"] == "failed", run
    assert run["error"]["type"] == "StateTooLarge" and "node 'pad'" in run["error"]["message"], run["error"]
    assert "pad" not in run["state"]  # the oversized write was never applied
    small = await engine.start_run("grow", {"size": 100})
    assert (await engine.wait_finished(small))["state"]["pad"] == "x" * 100
    await completes(engine)


async def test_a_resume_that_would_grow_the_state_past_max_state_bytes_is_a_413(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("approval", {"release": "4.0"})
    await engine.wait_until(lambda: _status_is(engine, run_id, "paused"), what="the run to pause")
    update = {"notes": "x" * LIMITS["max_state_bytes"]}
    status, body = await engine.request("POST", f"/runs/{run_id}/resume", json={"state_update": update})
    assert status == 413 and "updated state" in body["error"], body
    assert (await engine.state(run_id))["status"] == "paused"  # refused, it changed nothing
    status, body = await engine.request("POST", f"/runs/{run_id}/resume", json={"answer": True})
    assert status == 200, body
    assert (await engine.wait_finished(run_id))["state"]["shipped"] is True


async def test_runs_in_flight_past_the_limits_are_a_429_with_retry_after(engine: InProcessEngine) -> None:
    paused = [await engine.start_run("approval", {"release": f"1.{i}"}) for i in range(2)]
    for run_id in paused:
        await engine.wait_until(lambda r=run_id: _status_is(engine, r, "paused"), what=f"{run_id} to pause")
    status, body, headers = await answer(
        engine, "POST", "/graph/run", json={"graph_id": "approval", "initial_state": {"release": "2.0"}}, headers=AUTH
    )
    assert status == 429 and "'approval'" in body["error"] and int(headers["Retry-After"]) > 0, body
    third = await engine.start_run("reviewed_sum", {"n": 1})  # another graph has room: 3 in flight now
    await engine.wait_until(lambda: _status_is(engine, third, "paused"), what="the third run to pause")
    status, body, headers = await answer(
        engine, "POST", "/graph/run", json={"graph_id": "counter_loop", "initial_state": {}}, headers=AUTH
    )
    assert status == 429 and "--max-runs-in-flight" in body["error"] and "Retry-After" in headers, body
    for run_id in (*paused, third):
        assert (await engine.request("POST", f"/runs/{run_id}/cancel"))[0] == 200
    await completes(engine)


async def test_websockets_past_the_limits_are_a_429(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("approval", {"release": "3.0"})
    await engine.wait_until(lambda: _status_is(engine, run_id, "paused"), what="the run to pause")
    assert engine.session is not None
    url = f"{engine.url}/ws/logs/{run_id}"
    async with engine.session.ws_connect(url), engine.session.ws_connect(url):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with engine.session.ws_connect(url):
                pass
        assert refused.value.status == 429
    # Both closed: a stream of this run opens again.
    assert (await engine.request("POST", f"/runs/{run_id}/cancel"))[0] == 200
    events = await engine.ws_events(run_id)
    assert events[-1]["event"] == "run_cancelled"


async def test_node_logs_past_max_events_per_run_are_dropped_with_one_line_saying_so(
    engine: InProcessEngine,
) -> None:
    run_id = await engine.start_run("chatty", {"lines": 60})
    assert (await engine.wait_finished(run_id))["status"] == "completed"
    events = await engine.ws_events(run_id)
    logs = [e for e in events if e["event"] == "node_log"]
    dropped = [e for e in logs if e["fields"]["message"] == "node log lines dropped"]
    assert len(dropped) == 1 and "--max-events-per-run" in dropped[0]["fields"]["reason"]
    assert len(logs) < 60
    assert events[-1]["event"] == "run_completed"  # the engine's own events are all there


# -- the command line ------------------------------------------------------------------------


async def test_the_cli_sends_the_token_from_the_environment_or_a_file(engine: InProcessEngine, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWE_")}
    run_id = await engine.start_run("counter_loop", {"count": 0, "target": 1})  # one to list, whatever ran before
    base = ["runs", "--url", engine.url]
    code, _, err = await _awe(*base, env=env)
    assert code == 1 and "(401)" in err and "--token-file" in err, err
    code, out, err = await _awe(*base, env={**env, "AWE_TOKEN": TOKEN})
    assert code == 0, err
    code, out, err = await _awe(*base, "--token-file", str(token_file), env=env)
    assert code == 0 and "counter_loop" in out, err
    code, out, err = await _awe("logs", run_id, "--url", engine.url, env={**env, "AWE_TOKEN": TOKEN})
    assert code == 0 and "run_completed" in out, err


async def test_the_coordinator_refuses_a_network_api_without_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWE_")}
    flags = ["--host", "0.0.0.0", "--port", "0", "--db", str(tmp_path / "a.db"), "--log-dir", str(tmp_path)]
    code, _, err = await _awe("coordinator", *flags, env=env)
    assert code == 1 and "without a token" in err and "--allow-no-token" in err, err
    code, _, err = await _awe("coordinator", *flags, env={**env, "AWE_TOKEN": "short"})
    assert code == 1 and "at least 16" in err, err


async def test_a_client_without_the_token_learns_nothing_from_a_test_client(engine: InProcessEngine) -> None:
    async with Client(engine.url) as anonymous:
        status, body = await anonymous.request("GET", "/workers")
    assert status == 401 and set(body) == {"error"}


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def _status_is(engine: InProcessEngine, run_id: str, status: str) -> bool:
    return (await engine.state(run_id))["status"] == status


async def _awe(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "awe",
        *args,
        cwd=TESTS_DIR,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return int(process.returncode or 0), out.decode(), err.decode()


async def test_configured_origins_and_hosts_are_let_in(tmp_path: Path) -> None:
    eng = InProcessEngine(tmp_path)
    eng.settings = eng.settings.replace(cors_origins=("https://app.example",), allowed_hosts=("awe.internal",))
    async with eng:
        await eng.start(workers=1)
        origin = {"Origin": "https://app.example"}
        preflight = {
            **origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        }
        status, _, headers = await answer(eng, "OPTIONS", "/graph/run", headers=preflight)
        assert status == 204 and headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert (
            "POST" in headers["Access-Control-Allow-Methods"]
            and "Authorization" in headers["Access-Control-Allow-Headers"]
        )
        body = {"graph_id": "counter_loop", "initial_state": {"count": 0, "target": 1}}
        status, started, headers = await answer(eng, "POST", "/graph/run", json=body, headers=origin)
        assert status == 202 and headers["Access-Control-Allow-Origin"] == "https://app.example", started
        status, _, _ = await answer(eng, "GET", "/runs", headers={"Host": f"awe.internal:{eng.http_port}"})
        assert status == 200
        status, _, _ = await answer(eng, "GET", "/runs", headers={"Host": "other.internal"})
        assert status == 421


async def test_the_token_never_reaches_a_command_line_help_text_or_repr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from awe.cli.parser import parse, secret_environment, to_flags

    monkeypatch.setenv("AWE_TOKEN", TOKEN)
    settings = parse(["up", "--max-runs-in-flight", "7"]).settings
    assert settings.token == TOKEN and settings.max_runs_in_flight == 7
    argv = to_flags("coordinator", settings)  # what awe up starts its coordinator with
    assert TOKEN not in " ".join(argv) and "--max-runs-in-flight" in argv
    assert secret_environment("coordinator", settings) == {"AWE_TOKEN": TOKEN}
    assert TOKEN not in repr(settings)
    with pytest.raises(SystemExit):
        parse(["up", "--help"])
    shown = capsys.readouterr().out
    assert "--token-file" in shown and "set, hidden" in shown and TOKEN not in shown
