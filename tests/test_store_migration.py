"""A database written by an older awe is upgraded in place, and its unfinished runs resume where they were."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

from store_records import open_store

from awe.coordinator.run_machine import JobSpec, Run
from awe.graph import END, Graph
from awe.store import schema


def _version_2_database(path: Path) -> None:
    """The schema as awe wrote it before parallel branches, with a run waiting for its 2nd attempt at 'b'."""
    conn = sqlite3.connect(path)
    for version in (0, 1):
        for statement in schema.MIGRATIONS[version]:
            conn.execute(statement)
    conn.execute("PRAGMA user_version=2")
    conn.execute(
        "INSERT INTO runs (run_id, graph_id, graph_version, status, state, step_count, current_node, next_node,"
        " error, options, created_at, updated_at, started_at, finished_at, next_attempt)"
        " VALUES ('old-run', 'two', 1, 'running', '{\"x\": 1}', 1, 'b', 'b', NULL, '{}', 't0', 't1', 't0', NULL, 2)"
    )
    conn.execute(
        "INSERT INTO runs (run_id, graph_id, graph_version, status, state, step_count, current_node, next_node,"
        " error, options, created_at, updated_at, started_at, finished_at, next_attempt)"
        " VALUES ('done-run', 'two', 1, 'completed', '{}', 2, 'b', NULL, NULL, '{}', 't0', 't1', 't0', 't1', 1)"
    )
    conn.execute(
        "INSERT INTO steps (run_id, step, node, attempt, status, worker_id, delta, removed, route, error,"
        " started_at, finished_at, duration_ms) VALUES ('old-run', 1, 'a', 1, 'completed', 'w1', '{\"x\": 1}',"
        " '[]', 'null', NULL, 't0', 't0', 1.0)"
    )
    conn.commit()
    conn.close()


async def test_a_version_2_database_is_upgraded_and_its_running_run_resumes_at_the_right_attempt(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    _version_2_database(path)
    async with open_store(path) as store:
        record = await store.get_run("old-run")
        assert record is not None
        assert record.plan == {"tasks": [{"branch": "b", "node": "b", "attempt": 2}], "joins": {}}
        finished = await store.get_run("done-run")
        assert finished is not None and finished.plan == {"tasks": [], "joins": {}}
        (step,) = await store.steps("old-run")
        assert (step.step, step.branch, step.node, step.attempt, step.delta) == (1, "a", "a", 1, {"x": 1})

        graph = Graph("two").add_node("a", lambda s: None).add_node("b", lambda s: None)
        graph = graph.add_edge("a", "b").add_edge("b", END).set_entry_point("a").compile()
        run = Run(graph=graph, graph_version=1, record=record)
        assert run.next_jobs() == [JobSpec("old-run", "two", "b", 2, 2)]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (schema.SCHEMA_VERSION,)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
        assert "plan" in columns and "next_node" not in columns and "next_attempt" not in columns


def _version_6_database(path: Path, state_json: str, initial_json: str) -> None:
    """The schema before a run's state was stored key by key: the whole state in one ``runs.state`` text."""
    conn = sqlite3.connect(path)
    for version in range(6):
        for statement in schema.MIGRATIONS[version]:
            conn.execute(statement)
    conn.execute("PRAGMA user_version=6")
    conn.execute(
        "INSERT INTO runs (run_id, graph_id, graph_version, status, state, step_count, current_node, plan,"
        " error, options, created_at, updated_at, started_at, finished_at, initial_state)"
        " VALUES ('kept', 'two', 1, 'running', ?, 1, 'b', '{\"tasks\": [], \"joins\": {}}', NULL, '{}',"
        " 't0', 't1', 't0', NULL, ?)",
        (state_json, initial_json),
    )
    conn.commit()
    conn.close()


async def test_a_version_6_state_becomes_one_row_per_key_with_every_json_type_intact(tmp_path: Path) -> None:
    state = {
        "text": 'a "quoted" line\nand \\ more',
        "accents": "\u00e9t\u00e9 \u2603",
        "nested": {"list": [1, "two", None, True], "empty": {}},
        "yes": True,
        "no": False,
        "nothing": None,
        "count": 12345678901234567,
        "ratio": 0.1,
        "huge": 1e300,
        "negative": -3,
    }
    path = tmp_path / "v6.db"
    _version_6_database(path, json.dumps(state), json.dumps({"text": "start"}))
    async with open_store(path) as store:
        record = await store.get_run("kept")
        assert record is not None
        assert record.state == state
        assert {k: type(v) for k, v in record.state.items()} == {k: type(v) for k, v in state.items()}
        assert await store.initial_state("kept") == {"text": "start"}
        (unfinished,) = await store.unfinished_runs()
        assert unfinished.state == state
        # Who was connected is not known: the first restart waits its whole grace, as before.
        assert await store.present_workers() == [schema.UNKNOWN_WORKERS]


def _version_8_database(path: Path) -> None:
    """Before a run's values were kept as changes to its initial state: ``run_values`` held the whole state."""
    conn = sqlite3.connect(path)
    for version in range(8):
        for statement in schema.MIGRATIONS[version]:
            conn.execute(statement)
    conn.execute("PRAGMA user_version=8")
    for run_id in ("moved", "no-input"):
        conn.execute(
            "INSERT INTO runs (run_id, graph_id, graph_version, status, step_count, current_node, plan,"
            " error, options, created_at, updated_at, started_at, finished_at)"
            " VALUES (?, 'two', 1, 'running', 1, 'b', '{\"tasks\": [], \"joins\": {}}', NULL, '{}',"
            " 't0', 't1', 't0', NULL)",
            (run_id,),
        )
    # 'moved' started from {kept, changed, removed}; a step changed one key, removed one, added one.
    conn.execute(
        "INSERT INTO run_inputs VALUES ('moved', ?)", (json.dumps({"kept": "k", "changed": 1, "removed": [1]}),)
    )
    for run_id, key, value in [
        ("moved", "kept", '"k"'),
        ("moved", "changed", "2"),
        ("moved", "added", "null"),
        ("no-input", "x", '{"deep": [true]}'),  # a run older than kept initial states
    ]:
        conn.execute("INSERT INTO run_values VALUES (?, ?, ?)", (run_id, key, value))
    conn.commit()
    conn.close()


async def test_a_version_8_state_reads_the_same_laid_over_its_initial_state_and_steps_on(tmp_path: Path) -> None:
    path = tmp_path / "v8.db"
    _version_8_database(path)
    async with open_store(path) as store:
        moved = await store.get_run("moved")
        assert moved is not None and moved.state == {"kept": "k", "changed": 2, "added": None}
        assert await store.initial_state("moved") == {"kept": "k", "changed": 1, "removed": [1]}
        no_input = await store.get_run("no-input")
        assert no_input is not None and no_input.state == {"x": {"deep": [True]}}
        # A step after the upgrade: put back a key the run had removed, remove one it had added.
        state = {"kept": "k", "changed": 2, "removed": "back"}
        await store.write([replace(moved, state=state, changed_keys=frozenset({"removed", "added"}))])
        again = await store.get_run("moved")
        assert again is not None and again.state == state
