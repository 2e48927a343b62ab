"""The coordinator's answers to requests it cannot honour; the HTTP layer maps each to a status."""


class RequestError(Exception):
    """The request is well-formed but asks for something invalid."""


class UnknownGraph(LookupError):
    def __init__(self, graph_id: object, *, hint: str = "") -> None:
        super().__init__(f"unknown graph {graph_id!r}" + (f"; {hint}" if hint else ""))


class UnknownRun(LookupError):
    def __init__(self, run_id: object) -> None:
        super().__init__(f"unknown run {run_id!r}")


class ShuttingDown(RuntimeError):
    def __init__(self) -> None:
        super().__init__("the coordinator is shutting down and accepts no new runs")


class RunFinished(RuntimeError):
    """The run has already finished, so it cannot be changed (cancelled, for instance)."""

    def __init__(self, run_id: str, status: str) -> None:
        super().__init__(f"run {run_id!r} is already {status}")


class TooLarge(RequestError):
    """A value sent to the engine is larger than its configured limit (``--max-state-bytes``)."""


class TooBusy(RuntimeError):
    """The engine has as many unfinished runs as it is configured to keep; try again later."""

    RETRY_AFTER_SECONDS = 5
