"""Whether run ids exist in the store, asked by many submissions at once and answered by one query.

A client that names its runs (``"run_id"``) may send one again after a timeout and must get the
run it made, so every such submission asks the store whether the id exists. One read per
submission costs a hop to the reader's thread and back each time; under 100 submitting
connections those hops were a fifth of the coordinator's time. :class:`RunLookups` gathers the
questions asked while a query is running and answers all of them with the next query
(``SELECT ... WHERE run_id IN (...)``).

A question is answered by a query that *starts after it was asked*, never by one already
running, so the answer sees every commit made before the question: what one read per
submission guaranteed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator


class RunLookups:
    """``await lookups.exists(run_id)``: one store query for all the questions asked while the last ran."""

    def __init__(self, existing: Callable[[list[str]], Awaitable[set[str]]]) -> None:
        self._existing = existing
        """Which of the given ids exist (:meth:`awe.store.sqlite.Store.existing_run_ids`)."""
        self._asked: dict[str, list[asyncio.Future[bool]]] = {}
        self._answering: asyncio.Task[None] | None = None
        self.queries = 0
        """Queries made so far (questions answered per query is what the batching saves)."""

    async def exists(self, run_id: str) -> bool:
        """Whether the store holds a run with this id, as of some moment after this call began."""
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._asked.setdefault(run_id, []).append(answer)
        if self._answering is None:
            self._answering = asyncio.create_task(self._answer(), name="run-lookups")
        return await answer

    async def _answer(self) -> None:
        """Query for everything asked so far, then for what was asked meanwhile, until nothing is waiting."""
        asked: dict[str, list[asyncio.Future[bool]]] = {}
        try:
            while self._asked:
                asked, self._asked = self._asked, {}
                self.queries += 1
                try:
                    found = await self._existing(list(asked))
                except Exception as exc:  # each asker gets the store's error (a 500 it logs)
                    for answer, _ in _waiting(asked):
                        answer.set_exception(exc)
                    continue
                for answer, run_id in _waiting(asked):
                    answer.set_result(run_id in found)
        finally:  # if cancelled (the loop is closing), no asker may wait for ever; else both are settled
            for answer, _ in [*_waiting(asked), *_waiting(self._asked)]:
                answer.cancel()
            self._asked = {}
            self._answering = None


def _waiting(asked: dict[str, list[asyncio.Future[bool]]]) -> Iterator[tuple[asyncio.Future[bool], str]]:
    """Each question not yet answered, with its run id (an asker whose client left cancelled its own)."""
    for run_id, answers in asked.items():
        for answer in answers:
            if not answer.done():
                yield answer, run_id
