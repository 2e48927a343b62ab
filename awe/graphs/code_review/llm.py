"""The optional LLM step: ask an OpenAI-compatible chat completions endpoint to review the most complex functions.

It is configured by the worker's environment, so the model's address and key
live with the workers, not in every run's state:

* ``AWE_LLM_URL``: the endpoint, either the API base (``http://host:8080/v1``,
  to which ``/chat/completions`` is added) or the full URL ending in
  ``/chat/completions``;
* ``AWE_LLM_MODEL``: the model name (``"llm_model"`` in the initial state
  overrides it for one run);
* ``AWE_LLM_API_KEY`` (optional): sent as ``Authorization: Bearer ...``;
* ``AWE_LLM_TIMEOUT`` (optional, seconds, default 60, at most
  :data:`MAX_CALL_SECONDS`): how long one call may take.

Without a URL or a model the step is skipped and the report says so. A call
that fails (refused, an error status, an answer that is not a chat completion,
a timeout) raises :class:`LLMCallFailed`, which the node's retry policy retries;
the last attempt records the failure in the state instead, so the run still
completes with its report, which says what went wrong.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp

from awe.graph.policy import RetryPolicy

ATTEMPTS = 2
DEFAULT_CALL_SECONDS = 60.0
MAX_CALL_SECONDS = 100.0
NODE_TIMEOUT_SECONDS = MAX_CALL_SECONDS + 20.0
"""Each attempt's bound as a node: above the longest call, so a slow model ends as a clear call timeout."""
MOST_COMPLEX = 3
MAX_FUNCTION_CHARS = 6_000
MAX_ANSWER_CHARS = 20_000

SYSTEM_PROMPT = (
    "You are a senior Python reviewer. For each function you are given, say in a few short Markdown bullet "
    "points what makes it hard to maintain and how to restructure it without changing its behaviour."
)


class LLMCallFailed(Exception):
    """The model's endpoint could not give a review: worth another try, so not a programming error."""


RETRY = RetryPolicy(max_attempts=ATTEMPTS, backoff=0.5, retry_on=(LLMCallFailed,))


def endpoint(state: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The call's settings (``url``, ``model``, ``api_key``, ``timeout``), or ``None`` and why the step is skipped."""
    url = os.environ.get("AWE_LLM_URL", "").strip()
    model = state.get("llm_model") or os.environ.get("AWE_LLM_MODEL", "").strip()
    if not url:
        return None, "AWE_LLM_URL is not set in the worker's environment"
    if not model or not isinstance(model, str):
        return None, "no model: set AWE_LLM_MODEL in the worker's environment, or llm_model in the initial state"
    if not url.rstrip("/").endswith("/chat/completions"):
        url = url.rstrip("/") + "/chat/completions"
    try:
        timeout = float(os.environ.get("AWE_LLM_TIMEOUT") or DEFAULT_CALL_SECONDS)
    except ValueError:
        return None, f"AWE_LLM_TIMEOUT={os.environ['AWE_LLM_TIMEOUT']!r} is not a number of seconds"
    settings = {
        "url": url,
        "model": model,
        "api_key": os.environ.get("AWE_LLM_API_KEY") or None,
        "timeout": min(max(timeout, 0.1), MAX_CALL_SECONDS),
    }
    return settings, ""


def most_complex(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The :data:`MOST_COMPLEX` most complex functions, each with its current source text."""
    sources = state.get("sources") or {}
    ends = {(f["file"], f["lineno"]): f["end_lineno"] for f in state.get("functions") or []}
    chosen = []
    for c in sorted(state.get("complexity") or [], key=lambda c: -c["complexity"])[:MOST_COMPLEX]:
        lines = sources.get(c["file"], "").splitlines()
        end = ends.get((c["file"], c["line"]), c["line"])
        text = "\n".join(lines[c["line"] - 1 : end])[:MAX_FUNCTION_CHARS]
        chosen.append({"file": c["file"], "function": c["function"], "complexity": c["complexity"], "source": text})
    return chosen


def prompt(functions: list[dict[str, Any]]) -> str:
    parts = [
        f"### `{f['function']}` in {f['file']} (cyclomatic complexity {f['complexity']})\n```python\n{f['source']}\n```"
        for f in functions
    ]
    return "Review these functions:\n\n" + "\n\n".join(parts)


async def ask(settings: dict[str, Any], text: str) -> str:
    """The model's answer to ``text``, or :class:`LLMCallFailed` saying what went wrong."""
    body = {
        "model": settings["model"],
        "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": text}],
    }
    headers = {"Authorization": f"Bearer {settings['api_key']}"} if settings["api_key"] else {}
    timeout = aiohttp.ClientTimeout(total=settings["timeout"])
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(settings["url"], json=body, headers=headers) as response,
        ):
            if response.status != 200:
                detail = (await response.text())[:200]
                raise LLMCallFailed(f"{settings['url']} answered {response.status}: {detail}")
            answer = await response.json(content_type=None)
    except TimeoutError:
        raise LLMCallFailed(f"{settings['url']} did not answer within {settings['timeout']:g} s") from None
    except (aiohttp.ClientError, ValueError) as exc:
        raise LLMCallFailed(f"calling {settings['url']} failed: {type(exc).__name__}: {exc}") from None
    try:
        content = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise LLMCallFailed(f"{settings['url']} answered without choices[0].message.content") from None
    if not isinstance(content, str) or not content.strip():
        raise LLMCallFailed(f"{settings['url']} answered with an empty review")
    return content[:MAX_ANSWER_CHARS]
