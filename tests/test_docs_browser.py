"""``/docs`` in headless Chromium: Swagger UI shows every operation, and no request leaves the machine.

Chromium is Debian's (``apt-get install -y chromium``, which ``.ci/run`` does), driven by
Playwright; a machine without it fails this test rather than skip it. Requests to anywhere
but the engine are recorded and refused, so the page is seen as it would be offline.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from engine import InProcessEngine
from playwright.async_api import Request, Route, async_playwright, expect

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
ARTIFACTS = Path(os.environ.get("AWE_TEST_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts"))


async def test_swagger_ui_lists_every_operation_with_nothing_fetched_from_elsewhere(engine: InProcessEngine) -> None:
    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: `apt-get install -y chromium` (.ci/run does)")
    _, spec = await engine.request("GET", "/openapi.json")
    operations = sum(len(methods) for methods in spec["paths"].values())
    origin = urlsplit(engine.url).netloc
    local: list[str] = []
    foreign: list[str] = []
    errors: list[str] = []

    def on_request(request: Request) -> None:
        parts = urlsplit(request.url)
        (local if parts.netloc == origin or parts.scheme == "data" else foreign).append(request.url)

    async def only_local(route: Route) -> None:
        if urlsplit(route.request.url).netloc == origin or route.request.url.startswith("data:"):
            await route.continue_()
        else:
            await route.abort()

    with tempfile.TemporaryDirectory(prefix="awe-chromium-") as profile:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch_persistent_context(
                profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
            )
            try:
                page = await browser.new_page()
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.on("request", on_request)
                await page.route("**/*", only_local)
                await page.goto(f"{engine.url}/docs")
                await expect(page.locator(".opblock")).to_have_count(operations, timeout=30_000)
                await expect(page.locator(".info .title")).to_contain_text("awe, the Agent Workflow Engine")
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(ARTIFACTS / "docs.png"), full_page=True)
            finally:
                await browser.close()
    assert foreign == [], "requests that would leave the machine"
    assert f"{engine.url}/openapi.json" in local and f"{engine.url}/docs/assets/swagger-ui-bundle.js" in local
    assert errors == [], f"the browser's console reported errors: {errors}"
