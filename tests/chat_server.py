"""A small local server speaking the OpenAI chat completions API, standing in for a model in tests.

What it does depends on the model asked for: ``reviewer`` answers with a
review naming the functions it was shown, ``hang`` never answers (until the
server stops), ``broken`` answers 500. Every request is recorded.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class ChatServer:
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"path": request.path, "auth": request.headers.get("Authorization"), "body": body})
        model = body.get("model")
        if model == "hang":
            await self.release.wait()
            return web.json_response({"error": "the test is over"}, status=503)
        if model == "broken":
            return web.json_response({"error": {"message": "model overloaded"}}, status=500)
        shown = re.findall(r"### `([^`]+)`", body["messages"][-1]["content"])
        content = "Reviewed by the local model: " + ", ".join(shown) + ". Split `shipping` by concern."
        choice = {"index": 0, "message": {"role": "assistant", "content": content}}
        return web.json_response({"id": "c1", "object": "chat.completion", "choices": [choice]})


@asynccontextmanager
async def chat_server() -> AsyncIterator[ChatServer]:
    """The server on a free loopback port, stopped (and any hanging request released) on exit."""
    server = ChatServer()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", server.completions)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        server.url = f"http://{host}:{port}/v1"
        yield server
    finally:
        server.release.set()
        await runner.cleanup()
