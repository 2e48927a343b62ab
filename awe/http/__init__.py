"""The REST and WebSocket interface, a thin layer over :class:`awe.coordinator.Coordinator`."""

from awe.http.app import create_app

__all__ = ["create_app"]
