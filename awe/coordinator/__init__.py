"""The coordinator process: graph topology, the runs' state machines, dispatch to workers, persistence.

Import what you need from its modules (``awe.coordinator.coordinator``,
``awe.coordinator.run_machine``, ...): this file imports nothing, so that the
pure state machine can be imported without ZeroMQ or SQLite.
"""
