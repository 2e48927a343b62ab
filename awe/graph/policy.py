"""Per-node execution policies, as plain values."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# Errors that mean "the code is wrong", not "the world was unlucky": retrying cannot help.
PROGRAMMING_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    ArithmeticError,
    ImportError,
    LookupError,
    NameError,
    SyntaxError,
    AttributeError,
    AssertionError,
    NotImplementedError,
    RecursionError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and after how long, a failed node is tried again.

    ``max_attempts`` counts the first try. The n-th retry waits
    ``min(max_backoff, backoff * factor ** (n - 1))`` seconds, scaled by a
    random factor in [0.5, 1.5) when ``jitter`` is on, so that many runs
    failing together do not retry in lockstep. An exception is retried when it
    is an instance of ``retry_on`` and not of ``never_retry``; by default that
    is any ``Exception`` except the programming errors above.
    """

    max_attempts: int = 3
    backoff: float = 0.5
    factor: float = 2.0
    max_backoff: float = 30.0
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    never_retry: tuple[type[BaseException], ...] = field(default=PROGRAMMING_ERRORS)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff < 0 or self.factor < 1 or self.max_backoff < 0:
            raise ValueError("backoff and max_backoff must be >= 0 and factor >= 1")

    def retries(self, exc: BaseException) -> bool:
        return isinstance(exc, self.retry_on) and not isinstance(exc, self.never_retry)

    def delay(self, failed_attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before the attempt after ``failed_attempt``."""
        base = min(self.max_backoff, self.backoff * self.factor ** (failed_attempt - 1))
        return base * (0.5 + (rng or random).random()) if self.jitter else base

    def describe(self) -> dict[str, object]:
        return {
            "max_attempts": self.max_attempts,
            "backoff": self.backoff,
            "factor": self.factor,
            "max_backoff": self.max_backoff,
            "jitter": self.jitter,
            "retry_on": [t.__name__ for t in self.retry_on],
        }


NO_RETRY = RetryPolicy(max_attempts=1)
