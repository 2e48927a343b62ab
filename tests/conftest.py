from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from engine import Engine, InProcessEngine


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[InProcessEngine]:
    """A coordinator and two workers in the test's event loop; closed, and checked for leftovers, after the test."""
    async with InProcessEngine(tmp_path) as eng:
        yield await eng.start(workers=2)


@pytest.fixture
async def process_engine(tmp_path: Path) -> AsyncIterator[Engine]:
    """A coordinator and two workers as real processes, stopped by pid after the test."""
    async with Engine(tmp_path) as eng:
        yield await eng.start(workers=2)


@pytest.fixture
async def bare_engine(tmp_path: Path) -> AsyncIterator[Engine]:
    """An Engine of real processes that has started nothing yet; the test starts what it needs."""
    async with Engine(tmp_path) as eng:
        yield eng
