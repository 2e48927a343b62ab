"""The Code Review Agent's optional LLM step against a local chat completions server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from chat_server import ChatServer, chat_server
from code_review_helpers import MESSY, context, review

from awe.graphs.code_review import llm, nodes, write_report


@pytest.fixture
async def server() -> AsyncIterator[ChatServer]:
    async with chat_server() as running:
        yield running


@pytest.fixture(scope="module")
def reviewed() -> dict:
    """The messy file reviewed up to the LLM step (no model configured while it ran)."""
    return review({"raw_code": MESSY})


async def test_without_a_url_or_a_model_the_step_is_skipped_and_says_why(
    reviewed: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWE_LLM_URL", raising=False)
    monkeypatch.delenv("AWE_LLM_MODEL", raising=False)
    update = await nodes.llm_review(reviewed, context())
    skipped = {"status": "skipped", "reason": "AWE_LLM_URL is not set in the worker's environment"}
    assert update == {"llm_review": skipped}
    monkeypatch.setenv("AWE_LLM_URL", "http://127.0.0.1:9/v1")
    update = await nodes.llm_review(reviewed, context())
    assert update["llm_review"]["status"] == "skipped" and "AWE_LLM_MODEL" in update["llm_review"]["reason"]


async def test_the_model_reviews_the_most_complex_functions(
    reviewed: dict, server: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWE_LLM_URL", server.url)  # the API base: /chat/completions is added
    monkeypatch.setenv("AWE_LLM_MODEL", "reviewer")
    monkeypatch.setenv("AWE_LLM_API_KEY", "sk-test")
    update = await nodes.llm_review(reviewed, context())
    review_ = update["llm_review"]
    assert review_["status"] == "done" and review_["model"] == "reviewer"
    assert review_["functions"][0] == "shipping" and len(review_["functions"]) == llm.MOST_COMPLEX
    assert review_["answer"].startswith("Reviewed by the local model: shipping, ")
    (sent,) = server.requests
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer sk-test"
    assert sent["body"]["model"] == "reviewer"
    assert "def shipping(weight, zone, express, fragile, insured, country):" in sent["body"]["messages"][-1]["content"]
    report = write_report({**reviewed, **update})["report"]
    assert "## LLM review (reviewer)\n\nReviewed by the local model: shipping" in report


async def test_the_full_url_and_a_model_from_the_state_work_too(
    reviewed: dict, server: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWE_LLM_URL", server.url + "/chat/completions")
    monkeypatch.setenv("AWE_LLM_MODEL", "broken")
    update = await nodes.llm_review({**reviewed, "llm_model": "reviewer"}, context())
    assert update["llm_review"]["status"] == "done" and server.requests[0]["body"]["model"] == "reviewer"


async def test_a_model_that_does_not_answer_in_time_is_retried_then_reported(
    reviewed: dict, server: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWE_LLM_URL", server.url)
    monkeypatch.setenv("AWE_LLM_MODEL", "hang")
    monkeypatch.setenv("AWE_LLM_TIMEOUT", "0.3")
    with pytest.raises(llm.LLMCallFailed, match=r"did not answer within 0.3 s") as failed:
        await nodes.llm_review(reviewed, context(attempt=1))
    assert llm.RETRY.retries(failed.value)  # the engine tries again
    update = await nodes.llm_review(reviewed, context(attempt=llm.ATTEMPTS))
    assert update["llm_review"]["status"] == "failed" and update["llm_review"]["attempts"] == llm.ATTEMPTS
    assert "did not answer within 0.3 s" in update["llm_review"]["error"]
    report = write_report({**reviewed, **update})["report"]
    failed = f"## LLM review\n\nFailed after {llm.ATTEMPTS} attempts: {server.url}/chat/completions did not answer"
    assert failed in report


async def test_an_error_status_or_an_unreachable_model_is_a_retryable_failure(
    reviewed: dict, server: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWE_LLM_URL", server.url)
    monkeypatch.setenv("AWE_LLM_MODEL", "broken")
    with pytest.raises(llm.LLMCallFailed, match=r"answered 500: .*model overloaded"):
        await nodes.llm_review(reviewed, context())
    monkeypatch.setenv("AWE_LLM_URL", "http://127.0.0.1:9/v1")  # nothing listens on the discard port
    update = await nodes.llm_review(reviewed, context(attempt=llm.ATTEMPTS))
    assert update["llm_review"]["status"] == "failed" and "ClientConnectorError" in update["llm_review"]["error"]
