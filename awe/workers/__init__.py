"""The worker process: runs node jobs sent by the coordinator and reports state deltas."""

from awe.workers.worker import Worker, default_worker_id

__all__ = ["Worker", "default_worker_id"]
