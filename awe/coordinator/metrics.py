"""The coordinator's Prometheus metrics, served at ``/metrics``.

Counters and histograms move when a fact is durable: :class:`~awe.coordinator.runs.ActiveRuns`
calls :meth:`Metrics.committed` with the records of every commit, so a step
is counted once, when it is kept, never when it merely happened. Levels (runs
by status, queue depth, jobs in flight, workers, WebSocket clients, the store's
backlog) are read from the coordinator at scrape time, so they cannot drift.
Each coordinator has its own registry: several can live in one process (tests).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, GCCollector, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from awe.store import RunRecord, StepRecord

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STEP_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000)
FINISHED = ("completed", "failed", "cancelled")


class Metrics:
    def __init__(self, levels: Callable[[], dict[str, Any]]) -> None:
        """``levels`` answers, at scrape time, what the coordinator holds now (see :class:`_Levels`)."""
        self.registry = CollectorRegistry()
        self.runs_finished = Counter(
            "awe_runs_finished",
            "Runs that ended, by graph and final status",
            ["graph", "status"],
            registry=self.registry,
        )
        self.steps = Counter(
            "awe_steps",
            "Node executions kept, by graph, node and outcome",
            ["graph", "node", "outcome"],
            registry=self.registry,
        )
        self.step_seconds = Histogram(
            "awe_step_duration_seconds",
            "How long a node ran, by graph and node",
            ["graph", "node"],
            buckets=STEP_BUCKETS,
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "awe_db_commit_seconds", "How long one store commit took", buckets=COMMIT_BUCKETS, registry=self.registry
        )
        self.commit_batch = Histogram(
            "awe_db_commit_batch_submissions",
            "Submissions committed together in one transaction",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.written = Counter(
            "awe_db_written_characters",
            "Characters of state JSON the store wrote (initial states, changed keys): a step writes what changed",
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            "awe_event_loop_lag_seconds",
            "How late the coordinator's event loop ran a timer due every 0.1 s: how long other work held it",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_Levels(levels))
        # The process's own figures (process_resident_memory_bytes, process_cpu_seconds_total, open
        # descriptors) and the collector's (python_gc_collections_total): what an operator looks at first.
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self._children: dict[tuple[Any, ...], Any] = {}

    def _labelled(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, kept: prometheus_client checks and locks on every call, at every step."""
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def committed(self, graph_id: str, records: Iterable[Any]) -> None:
        """Count what a commit made durable: each step record, and each run that ended."""
        for record in records:
            if isinstance(record, StepRecord) and record.node != "__resume__":
                self._labelled(self.steps, graph_id, record.node, record.status).inc()
                if record.status == "completed":
                    self._labelled(self.step_seconds, graph_id, record.node).observe(record.duration_ms / 1000)
            elif isinstance(record, RunRecord) and record.status in FINISHED and record.finished_at:
                self._labelled(self.runs_finished, graph_id, record.status).inc()

    def store_committed(self, seconds: float, submissions: int, characters: int) -> None:
        self.commit_seconds.observe(seconds)
        self.commit_batch.observe(submissions)
        self.written.inc(characters)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Levels(Collector):
    """Gauges computed when Prometheus scrapes, from what the coordinator holds at that moment."""

    def __init__(self, levels: Callable[[], dict[str, Any]]) -> None:
        self._levels = levels

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        now = self._levels()
        by_status = GaugeMetricFamily("awe_active_runs", "Unfinished runs in memory, by status", labels=["status"])
        for status, count in sorted(Tally(now["active_statuses"]).items()):
            by_status.add_metric([status], count)
        yield by_status
        for name, help_text in (
            ("queued_jobs", "Jobs waiting for a free worker slot (held ones included)"),
            ("jobs_in_flight", "Jobs sent to workers and not yet answered"),
            ("workers", "Connected workers"),
            ("websocket_clients", "Open event streams (WebSocket subscriptions)"),
            ("store_backlog", "Submissions waiting for the store's next commit"),
        ):
            yield GaugeMetricFamily(f"awe_{name}", help_text, value=now[name])
        for name, help_text in (
            ("job_bytes_sent", "Bytes of Job messages sent to workers (a job carries the state keys that changed)"),
            ("whole_states_resent", "Jobs sent again with the whole state, the worker not keeping the copy named"),
            ("db_checkpoints", "Passive checkpoints: the write-ahead log copied into the database"),
            ("db_log_restarts", "Times the write-ahead log was started over after it grew past its bound"),
        ):
            yield CounterMetricFamily(f"awe_{name}", help_text, value=now[name])
        files = GaugeMetricFamily("awe_db_file_bytes", "Bytes on the disk, by file of the store", labels=["file"])
        for file, size in sorted(now["db_file_bytes"].items()):
            files.add_metric([file], size)
        yield files
