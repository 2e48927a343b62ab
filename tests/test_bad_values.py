"""Values the engine cannot store or send are refused where they enter, and stop nothing else.

Each value here once stopped the engine or a run: a 2**64 integer accepted by the API made msgpack
raise in the dispatch loop (no run was dispatched again), a lone surrogate made every later commit
fail. They are sent to a running engine through the API and returned by a node; each time a
normal run must complete right after.
"""

from __future__ import annotations

import json

import pytest
from engine import InProcessEngine

from awe import jsondata

DEEP = "[" * 100_000 + "]" * 100_000

BAD_BODIES = [
    # (the initial_state as JSON text, words the error must contain)
    ('{"raw_code": "x=1", "n": 18446744073709551616}', "initial_state['n'] is an integer outside 64 bits"),
    ('{"n": -9223372036854775809}', "initial_state['n'] is an integer outside 64 bits"),
    ('{"text": "a\\ud800b"}', "initial_state['text'] holds '\\ud800'"),
    ('{"key\\udc80": 1}', "lone surrogate"),
    ('{"x": NaN}', "NaN is not JSON"),
    ('{"x": Infinity}', "Infinity is not JSON"),
    ('{"x": -Infinity}', "-Infinity is not JSON"),
    ('{"x": ' + "1" * 4301 + "}", "not valid JSON"),
    ('{"x": ' + DEEP + "}", "nested too deeply"),
    ('{"x": ' + "[" * 150 + "]" * 150 + "}", "nested deeper than 100 levels"),
]


async def _post(engine: InProcessEngine, body: str) -> tuple[int, dict]:
    assert engine.session is not None
    async with engine.session.post(
        f"{engine.url}/graph/run", data=body.encode(), headers={"Content-Type": "application/json"}
    ) as r:
        return r.status, await r.json(content_type=None)


async def _a_normal_run_completes(engine: InProcessEngine) -> None:
    run_id = await engine.start_run("counter_loop", {"count": 0, "target": 2})
    assert (await engine.wait_finished(run_id))["status"] == "completed"


@pytest.mark.parametrize("state, words", BAD_BODIES, ids=[w[:24] for _, w in BAD_BODIES])
async def test_a_bad_value_in_initial_state_is_a_400_naming_it(engine: InProcessEngine, state: str, words: str) -> None:
    status, body = await _post(engine, '{"graph_id": "code_review_agent", "initial_state": ' + state + "}")
    assert status == 400, body
    assert words in body["error"], body["error"]
    _, runs = await engine.request("GET", "/runs")
    assert runs["runs"] == []  # nothing stored for it
    await _a_normal_run_completes(engine)


async def test_a_run_id_with_a_trailing_newline_is_refused(engine: InProcessEngine) -> None:
    status, body = await _post(engine, '{"graph_id": "counter_loop", "initial_state": {}, "run_id": "abc\\n"}')
    assert status == 400 and "'run_id' must be" in body["error"], body
    await _a_normal_run_completes(engine)


@pytest.mark.parametrize("kind", ["uint64_plus_one", "huge_integer", "lone_surrogate", "nan", "infinity", "deep"])
async def test_a_bad_value_returned_by_a_node_fails_that_node_and_nothing_else(
    engine: InProcessEngine, kind: str
) -> None:
    run_id = await engine.start_run("bad_output", {"kind": kind})
    run = await engine.wait_finished(run_id)
    assert run["status"] == "failed", run
    assert run["error"]["node"] == "emit_bad_value"
    assert run["error"]["type"] == "NodeOutputError"
    assert "state['out']" in run["error"]["message"], run["error"]["message"]
    assert run["state"] == {"kind": kind}  # the run's state is untouched
    await _a_normal_run_completes(engine)


def test_json_text_is_written_even_for_what_slipped_past_the_checks() -> None:
    """orjson writes the JSON of the store, the API and the logs; what it refuses, the standard library writes."""
    assert jsondata.to_json({"a": [1, "é", None]}) == '{"a":[1,"é",null]}'
    assert json.loads(jsondata.to_json({"lone": "\ud800"})) == {"lone": "\ud800"}
    assert json.loads(jsondata.to_json({"big": 2**70})) == {"big": 2**70}
    assert jsondata.to_json({"when": object}, default=lambda _: "a type") == '{"when":"a type"}'
