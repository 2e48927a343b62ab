"""What a worker's log file says about the jobs it ran, and a worker whose background task dies.

The job lines are read from real worker processes' files. The dying tasks are
shown on a ``Worker`` run in this process against a raw ROUTER socket, with the
fault injected by monkeypatching, since a real fault cannot be ordered up.

This module is also a graph module: the engine in
:func:`test_a_log_line_that_cannot_be_encoded_is_dropped_and_the_run_goes_on`
serves ``odd_log`` from it (``--graphs test_worker_logs``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
import zmq
import zmq.asyncio
from engine import Engine

from awe import END, Graph, logs
from awe.exit_codes import EXIT_SOFTWARE
from awe.graph import CompiledGraph
from awe.transport import DealerEndpoint
from awe.transport.messages import CancelJob, Goodbye, Hello, Job, JobDone, JobFailed, Message, decode
from awe.workers import worker as worker_module
from awe.workers.node_logger import NodeLogger
from awe.workers.worker import Worker, outcome_fields

JOB_FIELDS = ("run_id", "graph_id", "node", "branch", "step", "attempt", "job_id")

# -- a graph whose node logs a field msgpack cannot encode (served from this module) ---------


def note_oddly(state, ctx):
    ctx.log.info("odd_text", text="a \ud800 b")  # a lone surrogate: valid in Python, not in UTF-8
    return {"noted": True}


odd_log = Graph("odd_log")
odd_log.add_node("note", note_oddly)
odd_log.add_edge("note", END)
odd_log.set_entry_point("note")


# -- reading the log files --------------------------------------------------------------


def read_lines(*paths: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in paths if path.exists() for line in path.read_text().splitlines()]


def worker_lines(engine: Engine, worker_id: str = "*") -> list[dict[str, Any]]:
    """The lines of these workers' files, in time order (a run's nodes may run on different workers)."""
    lines = read_lines(*engine.log_dir.glob(f"worker-{worker_id}.jsonl"))
    return sorted(lines, key=lambda line: str(line["timestamp"]))


def job_lines(lines: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    return [line for line in lines if line["event"] in ("job_received", "job_finished") and line["run_id"] == run_id]


# -- job lines from real workers ----------------------------------------------------------


async def test_worker_logs_name_the_run_and_each_node_it_ran(process_engine: Engine) -> None:
    engine = process_engine
    run_id = await engine.start_run("chatty", {"lines": 2})
    assert (await engine.wait_finished(run_id))["status"] == "completed"

    lines = worker_lines(engine)
    jobs = job_lines(lines, run_id)
    assert [(j["event"], j["node"], j["step"], j["attempt"]) for j in jobs] == [
        ("job_received", "work", 1, 1),
        ("job_finished", "work", 1, 1),
        ("job_received", "finish", 2, 1),
        ("job_finished", "finish", 2, 1),
    ]
    for line in jobs:
        assert line["level"] == "info" and line["graph_id"] == "chatty" and line["branch"] == line["node"]
        assert line["worker"] in ("w1", "w2") and line["job_id"]
    finished = [j for j in jobs if j["event"] == "job_finished"]
    assert [j["outcome"] for j in finished] == ["completed", "completed"]
    assert all(j["duration_ms"] >= 0 for j in finished)
    # The node's own ctx.log lines, logged from its thread, carry the same identity.
    progress = [line for line in lines if line["event"] == "progress" and line.get("run_id") == run_id]
    received = jobs[0]
    assert [p["item"] for p in progress] == [0, 1]
    assert all(
        {k: p[k] for k in (*JOB_FIELDS, "worker")} == {k: received[k] for k in (*JOB_FIELDS, "worker")}
        for p in progress
    )


async def test_a_failing_node_is_logged_as_failed_with_its_error_type(process_engine: Engine) -> None:
    engine = process_engine
    run_id = await engine.start_run("failing", {"payload": "xyz"})
    assert (await engine.wait_finished(run_id))["status"] == "failed"

    finished = {j["node"]: j for j in job_lines(worker_lines(engine), run_id) if j["event"] == "job_finished"}
    assert finished["prepare"]["outcome"] == "completed"
    explode = finished["explode"]
    assert (explode["outcome"], explode["error_type"], explode["error"]) == (
        "failed",
        "ValueError",
        "cannot handle 'xyz'",
    )
    assert (explode["step"], explode["attempt"], explode["retryable"]) == (2, 1, False)


async def test_a_timed_out_node_is_logged_as_such_and_so_is_the_slot_it_holds(
    process_engine: Engine, tmp_path: Path
) -> None:
    engine = process_engine
    release = tmp_path / "release"
    run_id = await engine.start_run("hung", {"release_file": str(release)})
    final = await engine.wait_finished(run_id)
    release.touch()  # let the abandoned threads return before the engine stops
    assert final["status"] == "failed"

    lines = worker_lines(engine)
    finished = [j for j in job_lines(lines, run_id) if j["event"] == "job_finished"]
    assert [(j["attempt"], j["outcome"], j["error_type"]) for j in finished] == [
        (1, "timed_out", "NodeTimeout"),
        (2, "timed_out", "NodeTimeout"),
    ]
    # Logged by the worker, not the node, while the job ran: it names the job too.
    stuck = [line for line in lines if line["event"] == "slot_stuck"]
    assert sorted((s["run_id"], s["node"], s["attempt"]) for s in stuck) == [(run_id, "hang", 1), (run_id, "hang", 2)]


async def test_log_level_warning_silences_the_job_lines_and_info_does_not(bare_engine: Engine) -> None:
    engine = bare_engine
    await engine.start_coordinator()
    quiet = engine.start_worker(worker_id="quiet", log_level="warning")
    await engine.wait_for_workers(1)
    run_id = await engine.start_run("chatty", {"lines": 2})
    assert (await engine.wait_finished(run_id))["status"] == "completed"
    assert {s["worker_id"] for s in await engine.steps(run_id)} == {"quiet"}
    assert (engine.log_dir / "worker-quiet.jsonl").exists()
    quiet_lines = worker_lines(engine, "quiet")
    assert [line for line in quiet_lines if line["level"] not in ("warning", "error")] == []
    assert [line for line in quiet_lines if "run_id" in line] == []

    # The same run on a worker at the default level: the lines above were silenced, not missing.
    engine.start_worker(worker_id="loud")
    await engine.wait_for_workers(2)
    assert await engine.stop_process(quiet) == 0
    loud_run = await engine.start_run("chatty", {"lines": 2})
    assert (await engine.wait_finished(loud_run))["status"] == "completed"
    assert len(job_lines(worker_lines(engine, "loud"), loud_run)) == 4


def test_outcome_names_a_timeout_and_a_cancel_apart_from_a_failure() -> None:
    def failed(error_type: str) -> JobFailed:
        return JobFailed(job_id="j", run_id="r", error={"type": error_type, "message": "m"}, retryable=True)

    assert outcome_fields(JobDone(job_id="j", run_id="r", delta={})) == {"outcome": "completed"}
    assert outcome_fields(failed("JobCancelled")) == {"outcome": "cancelled"}
    assert outcome_fields(failed("NodeTimeout"))["outcome"] == "timed_out"
    assert outcome_fields(failed("KeyError")) == {
        "outcome": "failed",
        "error_type": "KeyError",
        "error": "m",
        "retryable": True,
    }


def test_a_node_cannot_hide_the_job_behind_its_own_field_names() -> None:
    forwarded: list[tuple[str, str, dict[str, Any]]] = []
    node_log = NodeLogger(
        structlog.get_logger(),
        lambda *line: forwarded.append(line),
        context={"run_id": "r1", "node": "fetch", "worker": "w1"},
    )
    with structlog.testing.capture_logs() as captured:
        node_log.info("fetched", node="https://example.com", event="page", size=3)
    (line,) = captured
    assert (line["event"], line["run_id"], line["node"], line["worker"]) == ("fetched", "r1", "fetch", "w1")
    assert (line["field_node"], line["field_event"], line["size"]) == ("https://example.com", "page", 3)
    # The run's event stream keeps the node's own names: there they sit under "fields".
    assert forwarded == [("info", "fetched", {"node": "https://example.com", "event": "page", "size": 3})]


# -- the level applies to structlog and to the standard library ---------------------------


@contextmanager
def configured_logs(folder: Path, level: str) -> Iterator[Path]:
    """``logs.configure`` in this process, undone afterwards (structlog, the root logger, the file)."""
    root, access = logging.getLogger(), logging.getLogger("aiohttp.access")
    saved_levels = (root.level, access.level)
    path = logs.configure("worker-test", folder, role="worker", level=level)
    (ours,) = root.handlers
    # Module loggers (awe.worker, awe.tasks) must not cache this configuration past the test.
    structlog.configure(cache_logger_on_first_use=False)
    try:
        yield path
    finally:
        structlog.reset_defaults()
        root.removeHandler(ours)
        assert isinstance(ours, logging.StreamHandler)
        ours.stream.close()
        root.setLevel(saved_levels[0])
        access.setLevel(saved_levels[1])


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("debug", {"sl_debug", "sl_info", "sl_warning", "std_debug", "std_info", "std_warning"}),
        ("info", {"sl_info", "sl_warning", "std_info", "std_warning"}),
        ("warning", {"sl_warning", "std_warning"}),
    ],
)
def test_the_log_level_applies_to_structlog_and_to_standard_library_loggers(
    tmp_path: Path, level: str, expected: set[str]
) -> None:
    with configured_logs(tmp_path, level) as path:
        ours, theirs = structlog.get_logger("awe.test"), logging.getLogger("aiohttp.server")
        for name in ("debug", "info", "warning"):
            getattr(ours, name)(f"sl_{name}")
            getattr(theirs, name)(f"std_{name}")
        logging.getLogger("aiohttp.access").info("GET /healthz 200")  # never, at any level
    assert {line["event"] for line in read_lines(path)} == expected


def test_an_unknown_log_level_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown log level 'verbose'"), configured_logs(tmp_path, "verbose"):
        pass


# -- a worker in this process, facing a raw ROUTER socket -----------------------------------


@dataclass
class Router:
    """The coordinator's side of the socket, scripted by the test."""

    socket: zmq.asyncio.Socket
    address: str

    async def next(self, kind: type[Message], timeout: float = 5.0) -> tuple[bytes, Any]:
        """The next message of this kind (heartbeats and others are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                identity, frame = await self.socket.recv_multipart()
                message = decode(frame)
                if isinstance(message, kind):
                    return identity, message

    async def send(self, identity: bytes, message: Message) -> None:
        await self.socket.send_multipart([identity, message.encode()])


@pytest.fixture
async def router() -> AsyncIterator[Router]:
    context = zmq.asyncio.Context()
    socket = context.socket(zmq.ROUTER)
    socket.setsockopt(zmq.LINGER, 0)
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    try:
        yield Router(socket, f"tcp://127.0.0.1:{port}")
    finally:
        socket.close()
        context.term()


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    with configured_logs(tmp_path, "info") as path:
        yield path


def tiny_graph() -> dict[str, CompiledGraph]:
    graph = Graph("tiny")
    graph.add_node("step", lambda state: None)
    graph.add_edge("step", END)
    graph.set_entry_point("step")
    return {"tiny": graph.compile()}


def job(job_id: str) -> Job:
    return Job(job_id=job_id, run_id=f"run-{job_id}", graph_id="tiny", node="step", step=1, attempt=1, state={})


def events(path: Path, name: str) -> list[dict[str, Any]]:
    return [line for line in read_lines(path) if line["event"] == name]


@asynccontextmanager
async def serving(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    """``worker.run()`` as a task, cancelled if the test leaves before it ends (a failed test)."""
    task = asyncio.create_task(worker.run())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_result_that_cannot_be_encoded_fails_its_job_and_the_send_loop_goes_on(
    router: Router, log_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The executor refuses such values in a node's output; this stands for any that slips through.
    unencodable = {"bad-surrogate": {"notes": ["fine", "a \ud800 b"]}, "bad-integer": {"count": 2**64}}

    async def run_job(graph: Any, job: Job, *_: Any, **__: Any) -> JobDone:
        return JobDone(job_id=job.job_id, run_id=job.run_id, delta=unencodable.get(job.job_id, {"ok": True}))

    monkeypatch.setattr(worker_module, "run_job", run_job)
    worker = Worker(connect=router.address, graphs=tiny_graph(), worker_id="w-enc", heartbeat_interval=0.1)
    async with serving(worker) as running:
        identity, _ = await router.next(Hello)

        await router.send(identity, job("bad-surrogate"))
        _, failed = await router.next(JobFailed)
        assert (failed.job_id, failed.run_id, failed.error["type"]) == (
            "bad-surrogate",
            "run-bad-surrogate",
            "ResultNotEncodable",
        )
        assert "state['notes'][1]" in failed.error["message"] and "surrogates not allowed" in failed.error["message"]

        await router.send(identity, job("bad-integer"))
        _, failed = await router.next(JobFailed)
        assert failed.job_id == "bad-integer" and "state['count']" in failed.error["message"]
        assert "OverflowError" in failed.error["message"]

        await router.send(identity, job("good"))  # the send loop still runs
        _, done = await router.next(JobDone)
        assert (done.job_id, done.delta) == ("good", {"ok": True})

        worker.stop()
        await asyncio.wait_for(running, 10)
    assert worker.exit_code == 0
    dropped = events(log_file, "message_not_encodable")
    assert [(d["kind"], d["job_id"], d["run_id"], d["replaced_by"]) for d in dropped] == [
        ("job_done", "bad-surrogate", "run-bad-surrogate", "job_failed"),
        ("job_done", "bad-integer", "run-bad-integer", "job_failed"),
    ]
    assert dropped[0]["error_type"] == "UnicodeEncodeError" and dropped[1]["error_type"] == "OverflowError"
    assert events(log_file, "background_task_died") == []


async def test_a_dead_background_task_hands_the_jobs_back_and_exits_70_with_its_traceback(
    router: Router, log_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def run_job(*_: Any, **__: Any) -> JobDone:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    def broken_beat(self: Worker) -> None:
        if self.running:  # once a job is in flight, so that the Goodbye has one to hand back
            raise RuntimeError("injected: the heartbeat cannot be built")

    monkeypatch.setattr(worker_module, "run_job", run_job)
    monkeypatch.setattr(Worker, "_beat", broken_beat)
    worker = Worker(
        connect=router.address, graphs=tiny_graph(), worker_id="w-beat", heartbeat_interval=0.05, drain_timeout=30
    )
    async with serving(worker) as running:
        identity, _ = await router.next(Hello)
        await router.send(identity, job("in-flight"))

        _, goodbye = await router.next(Goodbye)
        assert goodbye.returned == ["in-flight"]
        await asyncio.wait_for(running, 5)  # not the 30 s drain: the worker leaves at once
    assert worker.exit_code == EXIT_SOFTWARE == 70
    assert worker.tasks.failures == {"worker-heartbeat": "RuntimeError: injected: the heartbeat cannot be built"}
    (died,) = events(log_file, "background_task_died")
    assert died["task"] == "worker-heartbeat" and died["level"] == "error"
    assert died["exception"].startswith("Traceback") and "in broken_beat" in died["exception"]
    assert "RuntimeError: injected: the heartbeat cannot be built" in died["exception"]
    (leaving,) = events(log_file, "worker_leaving")
    assert leaving["goodbye"] is True
    assert [j["outcome"] for j in events(log_file, "job_finished")] == ["returned"]


async def test_a_dead_send_loop_leaves_at_once_without_waiting_to_say_goodbye(
    router: Router, log_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_send(self: DealerEndpoint, message: Message) -> None:
        raise zmq.ZMQError(zmq.ENOTSOCK)

    monkeypatch.setattr(DealerEndpoint, "send", broken_send)
    monkeypatch.setattr(DealerEndpoint, "send_now", lambda self, message: False)  # a socket this broken has no room
    worker = Worker(connect=router.address, graphs=tiny_graph(), worker_id="w-send", drain_timeout=30)
    async with serving(worker) as running:
        await asyncio.wait_for(running, 5)  # not the 30 s drain: nothing can be sent
    assert worker.exit_code == EXIT_SOFTWARE
    (died,) = events(log_file, "background_task_died")
    assert died["task"] == "worker-send" and "ZMQError" in died["exception"]
    (leaving,) = events(log_file, "worker_leaving")
    assert leaving["goodbye"] is False
    assert events(log_file, "goodbye_not_sent") == []


# -- a real worker meets a log line it cannot send ------------------------------------------


async def test_a_log_field_msgpack_cannot_encode_reaches_the_event_stream_escaped(tmp_path: Path) -> None:
    engine = Engine(tmp_path, graphs=("sample_graphs", "test_worker_logs"))
    try:
        await engine.start(workers=1)
        run_id = await engine.start_run("odd_log")
        assert (await engine.wait_finished(run_id, timeout=15))["status"] == "completed"
        events = await engine.ws_events(run_id)
        assert engine.workers[0].alive()
    finally:
        await engine.close()
    (logged,) = [e for e in events if e["event"] == "node_log"]
    assert logged["fields"] == {"message": "odd_text", "text": "a \\ud800 b"}  # escaped, readable
    lines = worker_lines(engine)
    assert [line for line in lines if line["event"] == "message_not_encodable"] == []
    # The worker's own file keeps the line as it was.
    (odd,) = [line for line in lines if line["event"] == "odd_text"]
    assert odd["text"] == "a \ud800 b" and odd["run_id"] == run_id


async def test_a_job_cancelled_before_its_task_starts_is_answered_and_frees_its_slot(
    router: Router, log_file: Path
) -> None:
    # The CancelJob is sent right behind its Job: the worker reads both before the job's task first runs.
    worker = Worker(connect=router.address, graphs=tiny_graph(), worker_id="w-cancel", heartbeat_interval=0.1)
    async with serving(worker) as running:
        identity, _ = await router.next(Hello)
        await router.socket.send_multipart([identity, job("doomed").encode()], copy=True)
        await router.socket.send_multipart([identity, CancelJob("doomed").encode()], copy=True)
        _, failed = await router.next(JobFailed)
        assert (failed.job_id, failed.error["type"]) == ("doomed", "JobCancelled")
        assert worker.running == {}  # its slot is free again

        await router.send(identity, job("next"))
        _, done = await router.next(JobDone)
        assert done.job_id == "next"
        worker.stop()
        await asyncio.wait_for(running, 10)
