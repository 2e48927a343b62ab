"""The database schema, in one place.

``PRAGMA user_version`` holds the schema version; :data:`MIGRATIONS` lists the
statements that bring a database from each version to the next, so an older
file is upgraded in place when the coordinator opens it.
"""

SCHEMA_VERSION = 9

CREATE_GRAPHS = """
CREATE TABLE IF NOT EXISTS graphs (
    graph_id     TEXT NOT NULL,
    version      INTEGER NOT NULL,
    fingerprint  TEXT NOT NULL,
    definition   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (graph_id, version)
)"""

CREATE_RUNS = """
CREATE TABLE IF NOT EXISTS runs (
    run_id        TEXT PRIMARY KEY,
    graph_id      TEXT NOT NULL,
    graph_version INTEGER NOT NULL,
    status        TEXT NOT NULL,
    state         TEXT NOT NULL,
    step_count    INTEGER NOT NULL,
    current_node  TEXT,
    next_node     TEXT,
    error         TEXT,
    options       TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    started_at    TEXT,
    finished_at   TEXT
)"""

CREATE_RUNS_INDEXES = (
    "CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at)",
    "CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, created_at)",
    "CREATE INDEX IF NOT EXISTS runs_by_graph ON runs (graph_id, created_at)",
)

CREATE_STEPS_V0 = """
CREATE TABLE IF NOT EXISTS steps (
    run_id       TEXT NOT NULL,
    step         INTEGER NOT NULL,
    node         TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    status       TEXT NOT NULL,
    worker_id    TEXT,
    delta        TEXT NOT NULL,
    removed      TEXT NOT NULL,
    route        TEXT,
    error        TEXT,
    started_at   TEXT NOT NULL,
    finished_at  TEXT NOT NULL,
    duration_ms  REAL NOT NULL,
    PRIMARY KEY (run_id, step, node, attempt)
) WITHOUT ROWID"""

CREATE_EVENTS = """
CREATE TABLE IF NOT EXISTS events (
    run_id  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    time    TEXT NOT NULL,
    event   TEXT NOT NULL,
    level   TEXT NOT NULL,
    node    TEXT,
    worker  TEXT,
    fields  TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID"""

CREATE_STEPS_V3 = """
CREATE TABLE steps_v3 (
    run_id       TEXT NOT NULL,
    step         INTEGER NOT NULL,
    branch       TEXT NOT NULL,
    node         TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    status       TEXT NOT NULL,
    worker_id    TEXT,
    delta        TEXT NOT NULL,
    removed      TEXT NOT NULL,
    route        TEXT,
    error        TEXT,
    started_at   TEXT NOT NULL,
    finished_at  TEXT NOT NULL,
    duration_ms  REAL NOT NULL,
    PRIMARY KEY (run_id, step, branch, attempt)
) WITHOUT ROWID"""

# Version 3: parallel branches. A step (superstep) may run several branches, so a step record is
# keyed by its branch, and a run persists its plan (the current superstep's branches with their
# attempt numbers, and how far each join has got) instead of one next node.
TO_PARALLEL_BRANCHES = (
    CREATE_STEPS_V3,
    "INSERT INTO steps_v3 SELECT run_id, step, node, node, attempt, status, worker_id, delta, removed, route,"
    " error, started_at, finished_at, duration_ms FROM steps",
    "DROP TABLE steps",
    "ALTER TABLE steps_v3 RENAME TO steps",
    'ALTER TABLE runs ADD COLUMN plan TEXT NOT NULL DEFAULT \'{"tasks": [], "joins": {}}\'',
    "UPDATE runs SET plan = json_object('tasks', json_array(json_object("
    "'branch', next_node, 'node', next_node, 'attempt', next_attempt)), 'joins', json_object())"
    " WHERE next_node IS NOT NULL",
    "ALTER TABLE runs DROP COLUMN next_node",
    "ALTER TABLE runs DROP COLUMN next_attempt",
)

# Version 4: graphs created over the API. A version is a Python graph's topology or a JSON graph's
# whole definition (``source``); a deleted graph keeps its versions for the runs that used them.
TO_JSON_GRAPHS = (
    "ALTER TABLE graphs ADD COLUMN source TEXT NOT NULL DEFAULT 'python'",
    "ALTER TABLE graphs ADD COLUMN deleted_at TEXT",
)

# Version 7: a run's state as a row per top-level key, so that a step writes only the keys it changed
# (a 1 MB value that no node touches is written once, not at every step), and the state a run started
# from in a table of its own, so that updating a run's row never copies it.
TO_STATE_BY_KEY = (
    """CREATE TABLE run_values (
    run_id TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
)""",
    # json_each gives a text value unquoted and true/false as 1/0: each back to its JSON text.
    "INSERT INTO run_values SELECT runs.run_id, j.key,"
    " CASE WHEN j.type IN ('object', 'array') THEN j.value WHEN j.type IN ('true', 'false', 'null') THEN j.type"
    " ELSE json_quote(j.value) END FROM runs, json_each(runs.state) AS j",
    "CREATE TABLE run_inputs (run_id TEXT PRIMARY KEY, initial_state TEXT NOT NULL)",
    "INSERT INTO run_inputs SELECT run_id, initial_state FROM runs WHERE initial_state IS NOT NULL",
    "ALTER TABLE runs DROP COLUMN state",
    "ALTER TABLE runs DROP COLUMN initial_state",
)

# Version 9: ``run_values`` holds only what differs from the run's initial state (``run_inputs``), so a
# run's state is its initial state with those rows laid over it, and a NULL value marks a key removed.
# Creating a run then writes its state once, not twice. Rows already there stay (they equal the state);
# what a run removed of its initial state gets its NULL row here.
TO_STATE_OVER_INPUT = (
    "CREATE TABLE run_values_v9 (run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT, PRIMARY KEY (run_id, key))",
    "INSERT INTO run_values_v9 SELECT run_id, key, value FROM run_values",
    "INSERT INTO run_values_v9 SELECT i.run_id, j.key, NULL FROM run_inputs AS i, json_each(i.initial_state) AS j"
    " WHERE NOT EXISTS (SELECT 1 FROM run_values AS v WHERE v.run_id = i.run_id AND v.key = j.key)",
    "DROP TABLE run_values",
    "ALTER TABLE run_values_v9 RENAME TO run_values",
)

UNKNOWN_WORKERS = "*"
"""A present worker standing for the workers of a database written before version 8."""

MIGRATIONS: dict[int, tuple[str, ...]] = {
    0: (CREATE_GRAPHS, CREATE_RUNS, *CREATE_RUNS_INDEXES, CREATE_STEPS_V0, CREATE_EVENTS),
    1: ("ALTER TABLE runs ADD COLUMN next_attempt INTEGER NOT NULL DEFAULT 1",),
    2: TO_PARALLEL_BRANCHES,
    3: TO_JSON_GRAPHS,
    4: (
        "ALTER TABLE runs ADD COLUMN initial_state TEXT",
        "CREATE INDEX IF NOT EXISTS runs_by_parent ON runs (json_extract(options, '$.forked_from.run_id'))",
    ),
    # Version 6: a client that follows many runs reads what changed since its cursor, in order.
    5: ("CREATE INDEX IF NOT EXISTS runs_by_change ON runs (updated_at, run_id)",),
    6: TO_STATE_BY_KEY,
    # Version 8: which workers are connected, so that a restarted coordinator knows whom to wait for.
    7: (
        "CREATE TABLE workers (worker_id TEXT PRIMARY KEY, joined_at TEXT NOT NULL, left_at TEXT)",
        # Who was connected before the upgrade is not known: one name nobody answers to makes the first
        # restart wait its whole grace for them, as coordinators before this version always did.
        f"INSERT INTO workers SELECT '{UNKNOWN_WORKERS}', '', NULL"
        " WHERE EXISTS (SELECT 1 FROM runs WHERE status IN ('queued', 'running', 'paused'))",
    ),
    8: TO_STATE_OVER_INPUT,
}
"""``MIGRATIONS[n]`` upgrades a database at version ``n`` to ``n + 1``."""

BUSY_TIMEOUT_MS = 5000
"""How long a statement waits for another connection's lock before the writer retries it."""

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # NORMAL in WAL mode survives any process crash; only an OS crash or power
    # loss can lose the last commits. Store(synchronous="FULL") trades speed for that.
    "PRAGMA synchronous={synchronous}",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    "PRAGMA foreign_keys=OFF",
)

UPSERT_RUN = """
INSERT INTO runs (run_id, graph_id, graph_version, status, step_count, current_node,
                  plan, error, options, created_at, updated_at, started_at, finished_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (run_id) DO UPDATE SET
    status = excluded.status, step_count = excluded.step_count,
    current_node = excluded.current_node, plan = excluded.plan, error = excluded.error,
    updated_at = excluded.updated_at, started_at = excluded.started_at, finished_at = excluded.finished_at"""

UPSERT_WORKER = """
INSERT INTO workers (worker_id, joined_at, left_at) VALUES (?, ?, ?)
ON CONFLICT (worker_id) DO UPDATE SET left_at = excluded.left_at,
    joined_at = CASE WHEN excluded.left_at IS NULL THEN excluded.joined_at ELSE workers.joined_at END"""

INSERT_RUN_INPUT = "INSERT OR IGNORE INTO run_inputs (run_id, initial_state) VALUES (?, ?)"

CLEAR_RUN_VALUES = "DELETE FROM run_values WHERE run_id = ?"

# A NULL value: the key was removed (see TO_STATE_OVER_INPUT).
UPSERT_RUN_VALUE = """
INSERT INTO run_values (run_id, key, value) VALUES (?, ?, ?)
ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value"""

REMOVE_INPUT_KEYS = """
INSERT OR IGNORE INTO run_values (run_id, key, value)
SELECT run_id, j.key, NULL FROM run_inputs,
    json_each(CASE WHEN typeof(run_inputs.initial_state) = 'text' THEN run_inputs.initial_state ELSE '{}' END) AS j
WHERE run_id = ?"""
"""After a run's whole state was written without its initial state: the initial's other keys are gone.
An initial state in the values file (a BLOB reference) is read by the store instead (INSERT_REMOVED_KEY)."""

INSERT_REMOVED_KEY = "INSERT OR IGNORE INTO run_values (run_id, key, value) VALUES (?, ?, NULL)"

INSERT_STEP = """
INSERT OR IGNORE INTO steps (run_id, step, branch, node, attempt, status, worker_id, delta, removed, route,
                             error, started_at, finished_at, duration_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""

INSERT_EVENT = """
INSERT OR IGNORE INTO events (run_id, seq, time, event, level, node, worker, fields)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)"""

INSERT_GRAPH = """
INSERT OR IGNORE INTO graphs (graph_id, version, fingerprint, definition, created_at, source)
VALUES (?, ?, ?, ?, ?, ?)"""

DELETE_GRAPH = "UPDATE graphs SET deleted_at = ? WHERE graph_id = ? AND deleted_at IS NULL"
