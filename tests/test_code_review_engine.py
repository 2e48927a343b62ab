"""The Code Review Agent end to end: real coordinator and worker processes, the LLM step against a local
chat completions server, and ``awe review`` from a terminal.

One engine serves the whole module (its workers have ``AWE_LLM_URL`` pointing at the module's chat
server, started first in the same event loop). The hostile sources run on worker processes: on the
in-process engine, where the node threads of both workers share one interpreter, ``ast.parse``
failed now and then with "SystemError: AST constructor recursion depth mismatch" (CPython 3.11
keeps that count per interpreter).
"""

from __future__ import annotations

import ast
import asyncio
import io
import json
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from chat_server import ChatServer, chat_server
from code_review_helpers import MESSY, SAMPLES
from engine import Engine, free_port

from awe.graphs.code_review import NODE_TIMEOUT_SECONDS, llm

pytestmark = pytest.mark.asyncio(loop_scope="module")

LLM_TIMEOUT = 1.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[ChatServer]:
    async with chat_server() as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(server: ChatServer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Engine]:
    env = {"AWE_LLM_URL": server.url, "AWE_LLM_MODEL": "reviewer", "AWE_LLM_TIMEOUT": str(LLM_TIMEOUT)}
    async with Engine(tmp_path_factory.mktemp("review"), env=env) as eng:
        yield await eng.start(workers=2)


async def finish(engine: Engine, state: dict[str, Any]) -> dict[str, Any]:
    """The run of ``state``, once it has ended; the body is a stream, as aiohttp wants for a 2 MB one."""
    body = {"graph_id": "code_review_agent", "initial_state": state, "wait": True, "timeout": 90}
    data = io.BytesIO(json.dumps(body).encode())
    status, run = await engine.request("POST", "/graph/run", data=data, headers={"Content-Type": "application/json"})
    assert status == 200, run
    return dict(run)


async def test_a_stdlib_package_is_reviewed_fixed_and_reviewed_by_the_model(engine: Engine, server: ChatServer) -> None:
    files = {name: Path(module.__file__).read_text() for name, module in _stdlib("textwrap", "shelve").items()}
    run = await finish(engine, {"files": files, "quality_threshold": 100})
    assert run["status"] == "completed", run["error"]
    state = run["state"]
    for path, source in state["sources"].items():
        ast.parse(source, path)
    scores = [s["quality_score"] for s in state["scores"]]
    assert len(scores) >= 2 and scores == sorted(scores), scores
    fixed = {(f["file"], f["rule"]) for r in state["refactorings"] for f in r["fixes"]}
    assert ("shelve.py", "bare-except") in fixed
    assert state["diff"].startswith("--- a/shelve.py\n+++ b/shelve.py\n")
    assert "-            except:\n+            except Exception:\n" in state["diff"]
    assert state["sources"]["textwrap.py"] == files["textwrap.py"]  # nothing it could fix safely
    assert state["llm_review"]["status"] == "done" and "Reviewed by the local model" in state["report"]
    assert state["stop_reason"] == "nothing_to_fix"


def _stdlib(*names: str) -> dict[str, Any]:
    modules = {}
    for name in names:
        modules[f"{name}.py"] = __import__(name)
    return modules


async def test_a_model_that_times_out_is_retried_and_the_run_still_completes(engine: Engine) -> None:
    run = await finish(engine, {"raw_code": MESSY, "llm_model": "hang"})
    assert run["status"] == "completed", run["error"]
    review = run["state"]["llm_review"]
    assert review == {
        "status": "failed",
        "error": f"{review['error'].split(' did not')[0]} did not answer within {LLM_TIMEOUT:g} s",
        "attempts": llm.ATTEMPTS,
    }
    attempts = [(s["attempt"], s["status"]) for s in await engine.steps(run["run_id"]) if s["node"] == "llm_review"]
    assert attempts == [(1, "failed"), (2, "completed")]
    assert f"Failed after {llm.ATTEMPTS} attempts" in run["state"]["report"]


async def test_bad_and_hostile_sources_end_with_a_clear_result(engine: Engine) -> None:
    sources = {
        "invalid": "def broken(:\n    pass\n",
        "empty": "",
        "two_mb": "x = 1\n" * (2 * 1024 * 1024 // 6 + 1),
        "deep_sum": "def f():\n    '''F.'''\n    return " + "1+" * 1000 + "1",
        "too_deep_to_parse": "x = " + "-" * 5000 + "1",
        "elif_chain": "def g(x):\n    '''G.'''\n    if x == 0:\n        return 0\n"
        + "".join(f"    elif x == {i}:\n        return {i}\n" for i in range(1, 1500)),
        "nul_byte": "x = 1\x00\n",
    }
    runs = await asyncio.gather(*(finish(engine, {"raw_code": code}) for code in sources.values()))
    final = dict(zip(sources, runs, strict=True))
    assert {name: r["status"] for name, r in final.items()} == dict.fromkeys(sources, "completed")
    rules = {name: {f["rule"] for f in r["state"]["findings"]} for name, r in final.items()}
    assert rules["invalid"] == {"syntax-error"}
    assert rules["empty"] == {"empty-source"}
    assert rules["two_mb"] == {"source-too-large"}
    assert "too-deep-to-analyse" in rules["deep_sum"] and "too-deep-to-analyse" in rules["elif_chain"]
    assert rules["too_deep_to_parse"] == {"syntax-error"} and rules["nul_byte"] == {"syntax-error"}
    invalid = final["invalid"]["state"]
    assert (invalid["findings"][0]["line"], invalid["findings"][0]["message"]) == (1, "invalid syntax")
    assert all(r["state"]["report"].startswith("# Code review: quality") for r in runs)


async def test_input_the_agent_cannot_use_is_refused_or_fails_clearly(engine: Engine) -> None:
    status, body = await engine.request(
        "POST", "/graph/run", json={"graph_id": "code_review_agent", "initial_state": {"raw_code": "x = '\ud800'"}}
    )
    assert status == 400 and "raw_code" in body["error"], body
    run = await finish(engine, {"source": "x = 1"})
    assert run["status"] == "failed" and run["error"]["node"] == "extract_functions"
    assert "needs initial_state['raw_code']" in run["error"]["message"]
    status, graph = await engine.request("GET", "/graphs/code_review_agent")
    timeouts = {n["name"]: n["timeout"] for n in graph["nodes"]}
    assert timeouts["refactor"] == NODE_TIMEOUT_SECONDS and timeouts["llm_review"] == llm.NODE_TIMEOUT_SECONDS


# -- awe review -------------------------------------------------------------------------------


async def awe_review(url: str, *args: str) -> tuple[int, str, str]:
    """``awe review ARGS --url URL`` in a child process, while this loop keeps serving the chat server."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "awe", "review", *args, "--url", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_awe_review_prints_the_report_and_the_diff_and_exits_on_the_threshold(engine: Engine) -> None:
    messy = str(SAMPLES / "messy_orders.py")
    code, out, err = await awe_review(engine.url, messy)
    assert code == 1, err  # 73 < 80
    assert out.startswith("# Code review: quality 73/100 (threshold 80)")
    assert "## LLM review (reviewer)" in out
    assert "--- a/messy_orders.py\n+++ b/messy_orders.py\n" in out and "-    except:\n+    except Exception:\n" in out
    assert Path(messy).read_text() == MESSY  # the file itself is left alone
    code, out, _ = await awe_review(engine.url, messy, "--threshold", "70")
    assert code == 0 and out.startswith("# Code review: quality 73/100 (threshold 70)")


async def test_awe_review_of_a_folder_reviews_its_python_files(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text('"""A package."""\n')
    (tmp_path / "pkg" / "core.py").write_text(textwrap.dedent('''\
        """Core."""


        def double(x):
            """Twice ``x``."""
            return 2 * x
        '''))  # fmt: skip
    (tmp_path / "notes.txt").write_text("not python")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "skipped.py").write_text("import os\n")
    code, out, err = await awe_review(engine.url, str(tmp_path))
    assert code == 0, err
    assert out.startswith("# Code review: quality 100/100 (threshold 80)\n\n2 files, 1 function.")
    assert "skipped.py" not in out


async def test_awe_review_refuses_bad_input_and_names_an_unreachable_engine(engine: Engine, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    code, _, err = await awe_review(engine.url, str(text))
    assert code == 2 and f"{text} is not a Python file" in err
    code, _, err = await awe_review(engine.url, str(tmp_path / "missing.py"))
    assert code == 2 and "does not exist" in err
    big = tmp_path / "big.py"
    big.write_text("x = 1\n" * 400_000)
    code, _, err = await awe_review(engine.url, str(big))
    assert code == 2 and "a file may have at most 1,000,000" in err
    nowhere = f"http://127.0.0.1:{free_port()}"
    code, _, err = await awe_review(nowhere, str(SAMPLES / "messy_orders.py"))
    assert code == 3 and f"cannot reach the engine at {nowhere}" in err
