from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from engine import Engine


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    """A coordinator and two workers, stopped by pid after the test."""
    eng = Engine(tmp_path)
    try:
        await eng.start(workers=2)
        yield eng
    finally:
        await eng.close()


@pytest.fixture
async def bare_engine(tmp_path: Path) -> AsyncIterator[Engine]:
    """An Engine that has started nothing yet; the test starts what it needs."""
    eng = Engine(tmp_path)
    try:
        yield eng
    finally:
        await eng.close()
