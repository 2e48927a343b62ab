"""The coordinator: the API the HTTP layer calls, over the runs, the dispatcher and the store.

It is built from parts that are ready (an open store, a bound endpoint, the
process's background tasks) by the process that owns them
(:mod:`awe.cli.coordinator_process`), which also closes them. Inside, the
work is split three ways: :class:`~awe.coordinator.runs.ActiveRuns` carries
out the run state machines' instructions, :class:`~awe.coordinator.dispatcher.Dispatcher`
sends jobs to workers, and :class:`~awe.coordinator.worker_messages.WorkerMessages`
turns what workers say into facts for both.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import structlog

from awe import jsondata
from awe.coordinator import loop_lag, replay
from awe.coordinator.errors import (
    RequestError,
    RunFinished,
    ShuttingDown,
    TooBusy,
    TooLarge,
    UnknownGraph,
    UnknownRun,
)
from awe.coordinator.events import EventBus, Subscription
from awe.coordinator.graph_registry import GraphConflict, GraphInUse, GraphRegistry, GraphVersion
from awe.coordinator.metrics import Metrics
from awe.coordinator.replay import ReplayError
from awe.coordinator.run_lookups import RunLookups
from awe.coordinator.run_machine import NotPaused, Run, RunStatus
from awe.coordinator.runs import ActiveRuns
from awe.coordinator.worker_messages import WorkerMessages
from awe.coordinator.worker_pool import WorkerPool
from awe.graph import CompiledGraph
from awe.graph.json_graph import state_problems
from awe.graph.tools import registered_tools
from awe.settings import Settings
from awe.store import EventRecord, GraphDeletion, GraphRecord, RunRecord, StepRecord, utcnow
from awe.store.sqlite import Store
from awe.tasks import BackgroundTasks
from awe.transport import RouterEndpoint
from awe.transport.messages import GraphDefined

log = structlog.get_logger("awe.coordinator")


class Coordinator:
    def __init__(
        self,
        *,
        graphs: dict[str, CompiledGraph],
        store: Store,
        endpoint: RouterEndpoint,
        tasks: BackgroundTasks,
        settings: Settings,
    ) -> None:
        self.python_graphs = graphs
        self.graphs = GraphRegistry(registered_tools())
        self.store = store
        self.run_lookups = RunLookups(store.existing_run_ids)
        self.endpoint = endpoint
        self.tasks = tasks
        self.settings = settings
        self.coordinator_id = f"coordinator-{uuid.uuid4().hex[:8]}"
        self.bus = EventBus()
        self.pool = WorkerPool(heartbeat_interval=settings.heartbeat_interval, liveness=settings.heartbeat_liveness)
        self.metrics = Metrics(self._levels)
        store.observe_commits(self.metrics.store_committed)
        self.runs = ActiveRuns(
            graphs=self.graphs,
            store=store,
            bus=self.bus,
            endpoint=endpoint,
            pool=self.pool,
            coordinator_id=self.coordinator_id,
            metrics=self.metrics,
            max_state_bytes=settings.max_state_bytes,
            max_events_per_run=settings.max_events_per_run,
        )
        self.dispatcher = self.runs.dispatcher
        self.messages = WorkerMessages(endpoint, self.runs, coordinator_id=self.coordinator_id)
        self._accepting = False
        self._serving: list[asyncio.Task[Any]] = []
        self._graph_changes = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Register the graphs, recover unfinished runs, then start dispatching and listening."""
        await self._load_graphs()
        await self.runs.recover(
            heartbeat_interval=self.settings.heartbeat_interval,
            liveness=self.settings.heartbeat_liveness,
        )
        self._serving = [
            *self.dispatcher.start(self.tasks),
            self.tasks.spawn(self.messages.serve(), name="worker-messages"),
            self.tasks.spawn(loop_lag.watch(self.metrics.loop_lag.observe), name="loop-lag"),
        ]
        self._accepting = True
        log.info(
            "coordinator_started",
            bind=self.endpoint.address,
            graphs=[v.graph_id for v in self.graphs.newest()],
            recovered_runs=len(self.runs),
        )

    async def _load_graphs(self) -> None:
        """The Python graphs of the loaded modules, then every stored JSON graph version."""
        for name, graph in self.python_graphs.items():
            version = await self.store.register_graph(name, graph.fingerprint, graph.describe())
            self.graphs.add(GraphVersion(name, version, "python", graph, graph.describe(), created_at=utcnow()))
        for record in await self.store.graph_records(source="json"):
            try:
                self.graphs.add(self.graphs.compile_record(record))
            except Exception as exc:  # a tool its modules no longer have: its runs cannot go on here
                log.error("graph_not_loaded", graph_id=record.graph_id, version=record.version, error=repr(exc))

    async def stop(self) -> None:
        """Stop taking runs and sending jobs; give the jobs in flight ``drain_timeout`` seconds to report.

        Their results are persisted like any other. A job still out when time is up stays recorded as
        in flight, and the next coordinator on this database recovers its run (adopting the job if its
        worker still runs it). The store and the endpoint stay open: their owner closes them.
        """
        self._accepting = False
        self.dispatcher.pause()
        drain_timeout = self.settings.drain_timeout
        log.info("coordinator_draining", in_flight=self.dispatcher.in_flight, timeout=drain_timeout)
        deadline = asyncio.get_running_loop().time() + drain_timeout
        while self.dispatcher.in_flight and asyncio.get_running_loop().time() < deadline:
            if self.tasks.fatal.is_set() and "worker-messages" in self.tasks.failures:
                break  # no result can arrive any more
            await asyncio.sleep(0.05)
        in_flight = self.dispatcher.in_flight
        await self.tasks.cancel(*self._serving)
        log.info("coordinator_stopped", unfinished_runs=len(self.runs), jobs_left_in_flight=in_flight)

    # -- the API the HTTP layer uses ----------------------------------------------------

    async def submit_run(
        self,
        graph_id: str,
        initial_state: dict[str, Any],
        *,
        run_id: str | None = None,
        max_steps: int,
        version: int | None = None,
        pauses: dict[str, Any] | None = None,
    ) -> tuple[RunRecord, bool]:
        """Start a run on a graph's newest version (or ``version``); returns its record and whether
        it was created (False: that run_id exists).

        ``initial_state`` is checked here, where data from clients enters the engine: a value the
        engine could not store or send is refused with its path, and so is a state that breaks a
        JSON graph's ``state_schema``.
        """
        if not self._accepting:
            raise ShuttingDown()
        graph = self._runnable(graph_id, version)
        _check_initial_state(graph, initial_state)
        self._check_size(initial_state, "initial_state")
        pauses = _checked_pauses(graph, pauses or {})
        if run_id is None:
            run_id = uuid.uuid4().hex
        else:
            existing = await self._existing_run(run_id)
            if existing is None and (active := self.runs.get(run_id)) is not None:
                existing = active.snapshot()  # submitted again while we were reading
            if existing is not None:
                return existing, False
        self._check_room(graph_id)
        run, out = Run.create(
            run_id=run_id,
            graph=graph.graph,
            graph_version=graph.version,
            state=initial_state,
            options={"max_steps": max_steps, **pauses},
            now=utcnow(),
        )
        self.runs.add(run)
        out.dispatch = run.next_jobs()
        await self.runs.apply_and_wait(run, out)
        log.info("run_queued", run_id=run_id, graph_id=graph_id, version=graph.version)
        return run.snapshot(), True

    # -- a person in the loop -------------------------------------------------------------

    async def resume_run(
        self, run_id: str, *, state_update: dict[str, Any], answer: dict[str, Any] | None, by: str
    ) -> RunRecord:
        """Go on with a paused run (see ``Run.resume``); 409 unless it is paused, once it is durable.

        Two resumes of one run cannot both succeed: the first moves it to ``running`` before it
        waits for the store, and the second then finds it not paused.
        """
        run = self.runs.get(run_id)
        if run is None:
            raise NotPaused(run_id, (await self.get_run(run_id)).status)
        self._check_update(run.graph.name, run.graph_version, {**run.state, **state_update}, state_update, answer)
        await self.runs.apply_and_wait(run, run.resume(state_update=state_update, answer=answer, by=by, now=utcnow()))
        log.info("run_resumed", run_id=run_id, by=by, updated_keys=sorted(state_update))
        return run.snapshot()

    def _check_update(
        self, graph_id: str, version: int, state: dict[str, Any], update: dict[str, Any], answer: Any
    ) -> None:
        try:
            jsondata.check(update, "state_update")
            jsondata.check(answer, "answer")
        except jsondata.NotJsonData as exc:
            raise RequestError(str(exc)) from None
        self._check_size(state, "the updated state")
        graph = self.graphs.get(graph_id, version)
        if graph is not None and graph.source == "json" and (problems := state_problems(graph.definition, state)):
            listed = "; ".join(f"{p.path or '/'}: {p.message}" for p in problems)
            raise RequestError(f"the updated state does not match the state_schema of graph {graph_id!r}: {listed}")

    def _check_size(self, state: dict[str, Any], what: str) -> None:
        """:class:`TooLarge` for a state past ``max_state_bytes`` as JSON (a run could not store it anyway)."""
        limit = self.settings.max_state_bytes
        size = jsondata.json_size(state)
        if size > limit:
            raise TooLarge(
                f"{what} is {size} bytes as JSON; the limit is {limit} (the coordinator's --max-state-bytes)"
            )

    def _check_room(self, graph_id: str) -> None:
        """:class:`TooBusy` when the engine, or this graph, has as many unfinished runs as it may keep."""
        total = self.settings.max_runs_in_flight
        per_graph = self.settings.max_runs_in_flight_per_graph
        unfinished = len(self.runs)
        if unfinished >= total:
            raise TooBusy(
                f"the engine has {unfinished} unfinished runs (queued, running or paused), its limit "
                "(--max-runs-in-flight); try again once some have ended"
            )
        of_graph = self.runs.of_graph(graph_id)
        if of_graph >= per_graph:
            raise TooBusy(
                f"graph {graph_id!r} has {of_graph} unfinished runs (queued, running or paused), its limit "
                "(--max-runs-in-flight-per-graph); try again once some have ended"
            )

    async def history(self, run_id: str, *, cursor: int, limit: int) -> dict[str, Any]:
        """Every step record with the state after it, ``limit`` at a time from ``cursor``."""
        record, graph, initial = await self._past(run_id)
        entries = replay.history(graph, initial, await self.store.steps(run_id), completed_steps=record.step_count)
        page = entries[cursor : cursor + limit]
        following = cursor + limit if cursor + limit < len(entries) else None
        return {"run_id": run_id, "entries": page, "next_cursor": following, "total": len(entries)}

    async def fork_run(
        self, run_id: str, *, step: int, state_update: dict[str, Any], new_run_id: str | None
    ) -> RunRecord:
        """A new run that starts from the state after ``step`` of ``run_id``; the steps before it do not run."""
        if not self._accepting:
            raise ShuttingDown()
        record, graph, initial = await self._past(run_id)
        self._check_room(record.graph_id)
        point = replay.fork_point(graph, record.graph_version, initial, await self.store.steps(run_id), step)
        state = {**point.state, **state_update}
        self._check_update(record.graph_id, record.graph_version, state, state_update, None)
        parent = {"run_id": run_id, "step": step, "updated_keys": sorted(state_update)}
        options = {**record.options, "forked_from": parent}
        child, out = Run.fork(
            run_id=new_run_id or uuid.uuid4().hex,
            graph=graph,
            graph_version=record.graph_version,
            state=state,
            step_count=step,
            tasks=point.tasks,
            joins=point.joins,
            options=options,
            now=utcnow(),
        )
        self.runs.add(child)
        out.dispatch = child.next_jobs()
        await self.runs.apply_and_wait(child, out)
        log.info("run_forked", run_id=child.run_id, parent=run_id, step=step)
        return child.snapshot()

    async def _past(self, run_id: str) -> tuple[RunRecord, CompiledGraph, dict[str, Any]]:
        """A run's record, its graph version and its initial state: what a replay starts from."""
        record = await self.get_run(run_id)
        graph = self.graphs.get(record.graph_id, record.graph_version)
        if graph is None:
            raise ReplayError(
                f"run {run_id!r} used graph {record.graph_id!r} version {record.graph_version}, "
                "which is no longer loaded"
            )
        initial = await self.store.initial_state(run_id)
        if initial is None:
            raise ReplayError(f"run {run_id!r} was stored before runs kept their initial state; it has no history")
        return record, graph.graph, initial

    async def forks_of(self, run_id: str) -> list[str]:
        return await self.store.forks_of(run_id)

    def _runnable(self, graph_id: str, version: int | None) -> GraphVersion:
        graph = self.graphs.get(graph_id, version)
        if graph is None:
            if version is not None and self.graphs.get(graph_id) is not None:
                known = [v.version for v in self.graphs.versions(graph_id)]
                raise UnknownGraph(f"{graph_id} version {version}", hint=f"its versions are {known}")
            raise UnknownGraph(graph_id)
        return graph

    # -- graphs created over the API -------------------------------------------------------

    async def create_graph(self, definition: Any) -> GraphVersion:
        """Store a JSON graph as a new version of its id and teach it to every connected worker.

        Raises :class:`InvalidGraph` listing every problem (nothing is stored then), or
        :class:`GraphConflict` if the id belongs to a Python graph.
        """
        if not self._accepting:
            raise ShuttingDown()
        # Checking and compiling a large definition is CPU work (up to a second at the size limit):
        # a thread keeps the event loop, and every run's dispatch, moving meanwhile.
        normalised = await asyncio.to_thread(self.graphs.check, definition)
        async with self._graph_changes:  # two posts of one id must not take the same number
            number = await self.store.next_graph_version(normalised["graph_id"])
            version = await asyncio.to_thread(self.graphs.compile_json, normalised, version=number, created_at=utcnow())
            await self.store.write([_graph_record(version)])
            self.graphs.add(version)
        await self.dispatcher.tell_every_worker(GraphDefined(version.graph_id, version.version, normalised))
        log.info("graph_created", graph_id=version.graph_id, version=version.version)
        return version

    async def delete_graph(self, graph_id: str) -> None:
        """Withdraw every version of a JSON graph; refused while any of its runs is in flight."""
        graph = self._runnable(graph_id, None)
        if graph.source != "json":
            raise GraphConflict(f"graph {graph_id!r} is defined in a Python graph module; remove it from there")
        async with self._graph_changes:
            in_flight = self.runs.of_graph(graph_id)
            if in_flight:
                raise GraphInUse(graph_id, in_flight)
            versions = self.graphs.versions(graph_id)
            self.graphs.remove(graph_id)  # no new run starts on it from here on
            try:
                await self.store.write([GraphDeletion(graph_id, utcnow())])
            except BaseException:
                for version in versions:
                    self.graphs.add(version)
                raise
        log.info("graph_deleted", graph_id=graph_id)

    def describe_graph(self, graph_id: str) -> dict[str, Any]:
        """The newest version in full (definition, Mermaid text), and every version's number and date."""
        graph = self._runnable(graph_id, None)
        versions = [{"version": v.version, "created_at": v.created_at} for v in self.graphs.versions(graph_id)]
        return {**graph.describe(), "versions": versions}

    def describe_tools(self) -> list[dict[str, Any]]:
        """The tools this coordinator knows, with how many connected workers have each."""
        return [
            {**tool.describe(), "workers": sum(1 for w in self.pool if name in w.tools)}
            for name, tool in sorted(self.graphs.tools.items())
        ]

    async def wait_for_end(self, run_id: str, seconds: float) -> RunRecord:
        """The run's record once it has finished (durably), or as it is when ``seconds`` run out.

        A paused run waits for a person, not for the engine: it is returned at once.
        """
        run = self.runs.get(run_id)
        if run is None:  # it has ended; once the store has flushed what was queued, its end is durable
            await self.store.write([])
            return await self.get_run(run_id)
        if run.is_paused:
            return run.snapshot()
        future = self.runs.finished(run_id)  # this caller's own: cancelling it on a timeout touches no one else's
        try:
            async with asyncio.timeout(seconds):  # one turn of the loop from the run's end, not wait_for's three
                return await future
        except TimeoutError:
            return run.snapshot()
        finally:
            self.runs.forget_waiter(run_id, future)

    async def _existing_run(self, run_id: str) -> RunRecord | None:
        active = self.runs.get(run_id)
        if active is not None:
            return active.snapshot()
        if not await self.run_lookups.exists(run_id):  # the usual answer, shared by concurrent submissions
            return None
        return await self.store.get_run(run_id)

    async def cancel_run(self, run_id: str) -> RunRecord:
        """Cancel an unfinished run; its state stays readable. Returns the run once the cancel is durable."""
        run = self.runs.get(run_id)
        if run is None:
            record = await self.get_run(run_id)
            raise RunFinished(run_id, record.status)
        await self.runs.apply_and_wait(run, run.cancel(utcnow()))
        log.info("run_cancelled", run_id=run_id)
        return run.snapshot()

    async def get_run(self, run_id: str) -> RunRecord:
        record = await self.store.get_run(run_id)
        if record is None:
            raise UnknownRun(run_id)
        return record

    async def list_runs(
        self, *, status: str | None, graph_id: str | None, limit: int, since: tuple[str, str] | None = None
    ) -> list[RunRecord]:
        """The newest runs; or, with ``since`` (a cursor), the runs changed after it, oldest change first."""
        if status is not None and status not in RunStatus.__members__.values():
            raise RequestError(f"unknown status {status!r}; expected one of {[s.value for s in RunStatus]}")
        if since is not None:
            return await self.store.runs_changed_since(since, status=status, graph_id=graph_id, limit=limit)
        return await self.store.list_runs(status=status, graph_id=graph_id, limit=limit)

    async def steps(self, run_id: str) -> list[StepRecord]:
        await self.get_run(run_id)
        return await self.store.steps(run_id)

    def describe_graphs(self) -> list[dict[str, Any]]:
        """The newest version of every graph (without its definition and Mermaid text)."""
        return [
            {k: v for k, v in graph.describe().items() if k not in ("definition", "mermaid")}
            for graph in self.graphs.newest()
        ]

    def describe_workers(self) -> list[dict[str, Any]]:
        return [w.describe() for w in self.pool]

    def health(self) -> dict[str, Any]:
        """``status`` is ``ok``, ``stopping``, or ``failed`` (a background task died: see ``failed_tasks``)."""
        status = "failed" if self.tasks.failures else "ok" if self._accepting else "stopping"
        return {
            "status": status,
            "failed_tasks": dict(self.tasks.failures),
            "coordinator_id": self.coordinator_id,
            "workers": len(self.pool),
            "free_slots": self.pool.free_slots,
            "active_runs": len(self.runs),
            "queued_jobs": len(self.dispatcher.queue),
            "store_backlog": self.store.backlog,
            "event_subscribers": self.bus.subscriber_count,
        }

    def _levels(self) -> dict[str, Any]:
        """What the coordinator holds now, for the metrics' gauges."""
        return {
            "active_statuses": [run.status.value for run in self.runs.runs.values()],
            "queued_jobs": len(self.dispatcher.queue) + len(self.dispatcher.held),
            "jobs_in_flight": self.dispatcher.in_flight,
            "workers": len(self.pool),
            "websocket_clients": self.bus.subscriber_count,
            "store_backlog": self.store.backlog,
            "job_bytes_sent": self.dispatcher.job_bytes_sent,
            "whole_states_resent": self.dispatcher.whole_states_resent,
            "db_checkpoints": self.store.checkpoints,
            "db_log_restarts": self.store.log_restarts,
            "db_file_bytes": self.store.file_sizes(),
        }

    async def events_after(self, run_id: str, seq: int) -> list[EventRecord]:
        return await self.store.events_after(run_id, seq)

    def subscribe(self, run_id: str) -> Subscription:
        return self.bus.subscribe(run_id)


def _check_initial_state(graph: GraphVersion, initial_state: dict[str, Any]) -> None:
    try:
        jsondata.check(initial_state, "initial_state")
    except jsondata.NotJsonData as exc:
        raise RequestError(str(exc)) from None
    if graph.source == "json":
        problems = state_problems(graph.definition, initial_state)
        if problems:
            listed = "; ".join(f"{p.path or '/'}: {p.message}" for p in problems)
            raise RequestError(f"initial_state does not match the state_schema of graph {graph.graph_id!r}: {listed}")


PAUSE_OPTIONS = ("interrupt_before", "interrupt_after")


def _checked_pauses(graph: GraphVersion, pauses: dict[str, Any]) -> dict[str, Any]:
    """The run request's own pause settings, with every node it names checked against the graph."""
    checked: dict[str, Any] = {}
    for key in PAUSE_OPTIONS:
        nodes = pauses.get(key) or []
        unknown = sorted(set(nodes) - set(graph.graph.nodes))
        if unknown:
            raise RequestError(
                f"'{key}' names {unknown}, which are not nodes of graph {graph.graph_id!r}; "
                f"its nodes are {sorted(graph.graph.nodes)}"
            )
        if nodes:
            checked[key] = sorted(set(nodes))
    if pauses.get("pause_on_error"):
        checked["pause_on_error"] = True
    return checked


def _graph_record(version: GraphVersion) -> GraphRecord:
    return GraphRecord(
        graph_id=version.graph_id,
        version=version.version,
        fingerprint=version.graph.fingerprint,
        definition=version.definition,
        created_at=version.created_at,
        source="json",
    )
