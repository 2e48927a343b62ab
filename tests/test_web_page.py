"""The web page at ``/``, driven in headless Chromium against real coordinator and worker processes.

One engine and one browser serve the module. The page comes with a strict Content-Security-Policy
(no inline script or style, no eval, nothing from elsewhere), and every test also checks that the
page logged no error in the browser's console (where the policy's refusals go) and that no request
left 127.0.0.1 (the page must work offline). Chromium
is Debian's (``apt-get install -y chromium``, which ``.ci/run`` does): a machine without it fails
these tests rather than skip them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiohttp
import pytest
import pytest_asyncio
from engine import Engine
from playwright.async_api import (
    BrowserContext,
    Dialog,
    Locator,
    Page,
    Request,
    Route,
    WebSocket,
    async_playwright,
    expect,
)

from awe.http import page

in_module_loop = pytest.mark.asyncio(loop_scope="module")
"""The tests share the module's engine and browser, so they run in its event loop."""

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("AWE_TEST_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts"))
WAIT_MS = 30_000


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def web_engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Engine]:
    # A thousand runs submitted at once must not meet the default limits on runs in flight.
    limits = {"AWE_MAX_RUNS_IN_FLIGHT": "5000", "AWE_MAX_RUNS_IN_FLIGHT_PER_GRAPH": "5000"}
    async with Engine(tmp_path_factory.mktemp("web"), graphs=("web_graphs",), env=limits) as eng:
        yield await eng.start(workers=2)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[BrowserContext]:
    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: `apt-get install -y chromium` (.ci/run does)")
    with tempfile.TemporaryDirectory(prefix="awe-chromium-") as profile:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_FLAGS,
                viewport={"width": 1440, "height": 1000},
            )
            try:
                yield context
            finally:
                await context.close()
        leftovers = _processes_using(profile)
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        assert not leftovers, f"Chromium processes outlived the browser fixture: {leftovers}"


def _processes_using(profile: str) -> list[int]:
    """The pids of the processes whose command line names ``profile``: Chromium's, which a fresh profile marks."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and profile.encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:  # it ended meanwhile
            continue
    return pids


@dataclass
class Watched:
    """A page and what it did that a test must not let pass: console errors, requests off this machine, dialogs."""

    page: Page
    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    local_requests: int = 0

    def assert_clean(self) -> None:
        assert self.errors == [], f"the browser's console reported errors: {self.errors}"
        assert self.foreign == [], f"the page asked for something off 127.0.0.1: {self.foreign}"
        assert self.dialogs == [], f"the page opened dialogs (user data ran as code?): {self.dialogs}"
        assert self.local_requests > 0, "no request to the engine was seen: the watch itself is broken"


@pytest_asyncio.fixture(loop_scope="module")
async def watched(browser: BrowserContext) -> AsyncIterator[Watched]:
    page = await browser.new_page()
    watched = Watched(page)

    def is_local(url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in ("data", "blob") or parts.hostname == "127.0.0.1"

    def on_request(request: Request) -> None:
        if is_local(request.url):
            watched.local_requests += 1
        else:
            watched.foreign.append(request.url)

    def on_websocket(ws: WebSocket) -> None:
        if not is_local(ws.url):
            watched.foreign.append(ws.url)

    async def on_dialog(dialog: Dialog) -> None:
        watched.dialogs.append(dialog.message)
        await dialog.dismiss()

    async def only_local(route: Route) -> None:
        if not is_local(route.request.url):
            await route.abort()
        else:
            await route.continue_()

    page.on("console", lambda m: watched.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: watched.errors.append(str(e)))
    page.on("request", on_request)
    page.on("websocket", on_websocket)
    page.on("dialog", on_dialog)
    await page.route("**/*", only_local)
    try:
        yield watched
    finally:
        await page.close()


RECORD_STATUSES = """() => {
  // Every change of a diagram node's status, in order: how the test sees nodes light up.
  window.awePaths = [];
  const last = new Map();
  let batch = 0;
  const note = (el) => {
    const holder = el.closest('.react-flow__node');
    if (holder === null) return;
    const id = holder.getAttribute('data-id');
    const status = el.getAttribute('data-status');
    if (last.get(id) === status) return;
    last.set(id, status);
    if (status !== 'idle') window.awePaths.push([batch, id, status]);
  };
  new MutationObserver((records) => {
    batch += 1;
    for (const r of records) {
      if (r.type === 'attributes') { note(r.target); continue; }
      for (const n of r.addedNodes) {
        if (n.nodeType !== 1) continue;
        if (n.matches('.awe-node')) note(n);
        n.querySelectorAll('.awe-node').forEach(note);
      }
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['data-status']});
}"""


def node(page: Page, name: str) -> Locator:
    return page.locator(f'.react-flow__node[data-id="{name}"]')


@in_module_loop
async def test_page_draws_the_graphs_and_lights_a_run_node_by_node(web_engine: Engine, watched: Watched) -> None:
    page = watched.page
    await page.goto(f"{web_engine.url}/")

    # The built-in graph is drawn first: every node, START and END, its edges and its router's branches.
    nodes = ("extract_functions", "check_complexity", "detect_issues", "refactor", "llm_review", "write_report")
    for name in ("__start__", *nodes, "__end__"):
        await expect(node(page, name)).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator(".react-flow__edge")).to_have_count(8)
    await expect(page.locator(".react-flow__edge.edge-conditional")).to_have_count(2)
    assert sorted(await page.locator(".react-flow__edge-text").all_text_contents()) == ["done", "refactor"]
    await expect(node(page, "detect_issues")).to_contain_text("router: review_gate")
    await _assert_apart(page)

    # A JSON graph's nodes name their tools.
    definition = {
        "graph_id": "stamped",
        "entry_point": "stamp",
        "nodes": [{"name": "stamp", "tool": "web.stamp"}],
        "edges": [{"from": "stamp", "to": "END"}],
    }
    status, answer = await web_engine.request("POST", "/graph/create", json=definition)
    assert status == 201, answer
    await page.goto(f"{web_engine.url}/#/graphs/stamped")
    await expect(node(page, "stamp")).to_contain_text("tool: web.stamp", timeout=WAIT_MS)

    # A graph with a fan-out, a join and a loop, its runs gated by a pause: started from the page, each
    # run waits there, so the test watches it from its first node on.
    await page.click('a[data-graph-id="gated_review"]')
    for name in ("intake", "plan", "style", "security", "summarise", "__join_0__"):
        await expect(node(page, name)).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator(".react-flow__edge.edge-join")).to_have_count(3)
    await expect(node(page, "intake")).to_contain_text("pauses before")
    await _assert_apart(page)
    await page.fill('textarea[name="initial_state"]', json.dumps({"pace": 0.3, "rounds": 2}))
    await page.click("text=Start run")
    await page.wait_for_url(re.compile(r"#/runs/."))
    run_id = unquote(page.url.split("#/runs/", 1)[1])
    await expect(node(page, "intake").locator(".awe-node")).to_have_attribute("data-status", "paused", timeout=WAIT_MS)
    await page.evaluate(RECORD_STATUSES)
    await page.get_by_test_id("pause").locator("text=Resume").click()
    await expect(page.get_by_test_id("run-status")).to_have_text("completed", timeout=WAIT_MS)
    await expect(node(page, "summarise").locator(".awe-node")).to_have_attribute("data-status", "done")

    # The nodes lit up in the order the engine ran them: each step's nodes running, then done, then the next
    # step's. Changes the page drew at once (in one batch of DOM mutations) count as simultaneous.
    by_step: dict[int, set[str]] = {}
    for s in await web_engine.steps(run_id):
        if s["node"] != "__resume__":
            by_step.setdefault(s["step"], set()).add(s["node"])
    expected = [by_step[k] for k in sorted(by_step)]
    assert expected == [{"intake"}, *[{"plan"}, {"style", "security"}, {"summarise"}] * 2]
    seen: list[tuple[int, str, str]] = await page.evaluate("window.awePaths")
    used: dict[tuple[str, str], int] = {}
    last = 0
    for nodes in expected:
        for status in ("running", "done"):
            batches = []
            for name in nodes:
                times = [batch for batch, n, s in seen if (n, s) == (name, status)]
                k = used.get((name, status), 0)
                assert k < len(times), f"{name} was not seen {status} (time {k + 1}) in {seen}"
                used[(name, status)] = k + 1
                batches.append(times[k])
            assert min(batches) >= last, f"{sorted(nodes)} {status} before the step before them: {seen}"
            last = max(batches)
    assert len(seen) == sum(used.values()), f"the diagram changed more than the run did: {seen}"

    # The path: parallel branches side by side in one step; the state after the last step, its changes marked.
    await expect(page.locator(".step-row")).to_have_count(7)
    await expect(page.locator('.step-row[data-step="3"] .chip')).to_have_count(2)
    await expect(page.locator(".state-table tr.changed")).to_have_attribute("data-key", "summary")
    await expect(page.locator('.state-table tr[data-key="summary"] pre.value')).to_have_text(
        "4 findings after 2 rounds"
    )
    await expect(page.locator('.event-row[data-event="run_completed"]')).to_have_count(1)
    await expect(node(page, "plan").locator(".awe-node-visits")).to_have_text("\u00d72")  # x2: ran twice
    run_row = page.locator(f'.run-row[data-run-id="{run_id}"]')  # the runs list follows the run
    await expect(run_row).to_have_attribute("data-status", "completed", timeout=WAIT_MS)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "web-page-run.png"
    await page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot of the run's page: {shot}")
    watched.assert_clean()


@in_module_loop
async def test_state_and_logs_are_shown_as_text_never_run(web_engine: Engine, watched: Watched) -> None:
    page = watched.page
    script, image = "<script>alert(1)</script>", "<img src=x onerror=alert(2)>"
    run_id = await web_engine.start_run("paced_review", {"pace": 0, "note": script, "html": image})
    await web_engine.wait_finished(run_id)
    await page.goto(f"{web_engine.url}/#/runs/{run_id}")
    await expect(page.get_by_test_id("run-status")).to_have_text("completed", timeout=WAIT_MS)
    await expect(page.locator('.state-table tr[data-key="note"] pre.value')).to_have_text(script)
    await expect(page.locator('.state-table tr[data-key="html"] pre.value')).to_have_text(image)
    await expect(page.locator('.event-row[data-event="node_log"]')).to_contain_text(script)
    # One round: every edge lit but the router's way back to plan.
    await expect(page.locator(".react-flow__edge.taken")).to_have_count(7)
    await expect(page.locator(".react-flow__edge:not(.taken)")).to_have_attribute("data-id", "c:0:1")
    await expect(page.locator(".react-flow__edge:not(.taken) .react-flow__edge-text")).to_have_text("again")
    assert await page.locator("script").count() == 1, "only the page's own bundle may be a script"
    assert await page.locator("main img").count() == 0
    watched.assert_clean()


@in_module_loop
async def test_the_start_form_says_what_is_wrong_and_starts_nothing(web_engine: Engine, watched: Watched) -> None:
    page = watched.page
    await page.goto(f"{web_engine.url}/#/graphs/ticker")
    form, error = page.locator(".start-run"), page.locator(".start-run .error")
    await form.locator("textarea").fill('{"target": ')
    await form.locator("text=Start run").click()
    await expect(error).to_contain_text("not valid JSON")
    await form.locator("textarea").fill('{"target": 18446744073709551616}')  # the API refuses it: 400
    await form.locator("text=Start run").click()
    await expect(error).to_contain_text("initial_state['target'] is an integer outside 64 bits")
    assert page.url.endswith("#/graphs/ticker")
    _, runs = await web_engine.request("GET", "/runs?graph_id=ticker")
    assert runs["runs"] == []
    refused = "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    assert watched.errors == [refused]  # how Chromium reports the refused request, and nothing else
    watched.errors.clear()
    watched.assert_clean()


@in_module_loop
async def test_a_paused_run_shows_its_question_and_resumes_with_the_edited_state(
    web_engine: Engine, watched: Watched
) -> None:
    page = watched.page
    run_id = await web_engine.start_run("asking", {"release": "v1"})
    await web_engine.wait_until(
        lambda: _status_is(web_engine, run_id, "paused"), what=f"run {run_id} to pause for its question"
    )
    await page.goto(f"{web_engine.url}/#/runs/{run_id}")
    pause = page.get_by_test_id("pause")
    await expect(pause.locator(".question")).to_contain_text('"question": "ship v1?"', timeout=WAIT_MS)
    await expect(node(page, "ask").locator(".awe-node")).to_have_attribute("data-status", "paused")
    await page.select_option('select[name="status"]', "paused")  # the runs waiting for someone
    listed = page.locator(f'.run-row[data-run-id="{run_id}"]')
    await expect(listed).to_have_count(1)
    await pause.locator('textarea[name="state"]').fill(json.dumps({"release": "v2"}))
    await pause.locator('input[name="answer"]').fill("yes")
    await pause.locator('input[name="by"]').fill("ana")
    await pause.locator("text=Resume").click()
    await expect(page.get_by_test_id("run-status")).to_have_text("completed", timeout=WAIT_MS)
    await expect(listed).to_have_count(0, timeout=WAIT_MS)  # no longer paused: it leaves the filtered list
    final = await web_engine.state(run_id)
    assert final["state"] == {"release": "v2", "approved": "yes"}
    resume = [s for s in await web_engine.steps(run_id) if s["node"] == "__resume__"]
    assert resume[0]["delta"] == {"release": "v2"} and resume[0]["route"]["by"] == "ana"
    watched.assert_clean()


@in_module_loop
async def test_a_thousand_runs_and_a_run_of_a_thousand_steps_render_only_what_is_in_view(
    web_engine: Engine, watched: Watched
) -> None:
    page = watched.page
    long_run = await web_engine.start_run("ticker", {"target": 1000}, max_steps=1000)
    await web_engine.wait_finished(long_run)
    runs = await asyncio.gather(*(web_engine.start_run("ticker", {"target": 1}) for _ in range(1000)))
    for run_id in runs:
        await web_engine.wait_finished(run_id)

    await page.goto(f"{web_engine.url}/#/runs/{long_run}")
    await page.select_option('select[name="graph"]', "ticker")
    await page.select_option('select[name="status"]', "completed")
    # The newest thousand (the API's largest page), said so; the last of them drawn once scrolled to.
    await expect(page.get_by_test_id("runs-count")).to_have_text("1000", timeout=WAIT_MS)
    await expect(page.locator(".runs-note")).to_contain_text("newest 1000")
    assert await page.locator(".run-row").count() < 100
    _, newest = await web_engine.request("GET", "/runs?graph_id=ticker&status=completed&limit=1000")
    oldest_listed = newest["runs"][-1]["run_id"]
    await expect(page.locator(f'.run-row[data-run-id="{oldest_listed}"]')).to_have_count(0)
    await page.locator(".runs-list").evaluate("list => { list.scrollTop = list.scrollHeight; }")
    await expect(page.locator(f'.run-row[data-run-id="{oldest_listed}"]')).to_be_visible()

    # The list follows new runs through its filters: one more completed run of the graph appears.
    another = await web_engine.start_run("ticker", {"target": 2})
    await expect(page.get_by_test_id("runs-count")).to_have_text("1001", timeout=WAIT_MS)
    await page.locator(".runs-list").evaluate("list => { list.scrollTop = 0; }")
    await expect(page.locator(f'.run-row[data-run-id="{another}"]')).to_have_count(1)

    # The long run: the path, the events and the steps are all there, and only a window of each is drawn.
    await expect(page.get_by_test_id("run-status")).to_have_text("completed", timeout=WAIT_MS)
    await expect(page.locator('.step-row[data-step="1000"]')).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator('.history-row:has-text("1000. tick")')).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator('.state-table tr[data-key="count"] pre.value')).to_have_text("1000")
    await expect(page.locator('.event-row[data-event="run_completed"]')).to_be_visible()
    await expect(page.locator(".react-flow__edge.taken")).to_have_count(3, timeout=WAIT_MS)  # START, tick to tick, END
    for rows in (".step-row", ".event-row", ".history-row", ".run-row"):
        assert await page.locator(rows).count() < 100, f"{rows}: every row is drawn, not only those in view"
    watched.assert_clean()


async def _assert_apart(page: Page) -> None:
    """No two nodes of the diagram cover each other: each can be seen and told apart."""
    boxes = {}
    for holder in await page.locator(".react-flow__node").all():
        box = await holder.bounding_box()
        assert box is not None
        boxes[await holder.get_attribute("data-id")] = box
    names = sorted(boxes, key=str)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            p, q = boxes[a], boxes[b]
            apart = (
                p["x"] + p["width"] <= q["x"]
                or q["x"] + q["width"] <= p["x"]
                or p["y"] + p["height"] <= q["y"]
                or q["y"] + q["height"] <= p["y"]
            )
            assert apart, f"nodes {a} and {b} overlap: {p} {q}"


async def _status_is(engine: Engine, run_id: str, status: str) -> bool:
    return (await engine.state(run_id))["status"] == status


WEB_SOURCES = ("index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts", "public", "src")
"""What the build is made from, hashed as ``web/vite.config.ts`` does when it writes ``source-hash.txt``."""


def test_the_shipped_build_is_of_the_sources_in_web() -> None:
    web, static = Path(__file__).parent.parent / "web", Path(page.__file__).parent / "static"
    files = sorted(
        path.relative_to(web).as_posix()
        for source in WEB_SOURCES
        for path in ([web / source] if (web / source).is_file() else (web / source).rglob("*"))
        if path.is_file()
    )
    digest = hashlib.sha256()
    for name in files:
        digest.update(f"{name}\0".encode())
        digest.update((web / name).read_bytes())
        digest.update(b"\0")
    built = (static / "source-hash.txt").read_text().strip()
    assert built == digest.hexdigest(), "web/ changed since the page was built: `cd web && npm ci && npm run build`"


@in_module_loop
async def test_the_page_is_one_file_and_assets_beside_the_api(web_engine: Engine) -> None:
    """``/`` is the built page under its Content-Security-Policy, with no inline script; its assets come
    from ``/ui/``; the API's answers, and its JSON 404, are untouched."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{web_engine.url}/") as r:
            assert r.status == 200 and r.content_type == "text/html"
            assert r.headers["Content-Security-Policy"] == page.CONTENT_SECURITY_POLICY
            html = await r.text()
        scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
        assert scripts and all('src="/ui/' in attrs and body.strip() == "" for attrs, body in scripts), html
        assets = re.findall(r'(?:src|href)="(/ui/[^"]+)"', html)
        assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
        for asset in assets:
            async with http.get(f"{web_engine.url}{asset}") as r:
                assert r.status == 200, asset
                body = await r.text()
                assert "eval(" not in body and "new Function" not in body, f"{asset} evaluates strings"
        async with http.get(f"{web_engine.url}/ui/assets/nothing-here.js") as r:
            assert r.status == 404 and "nothing-here.js" in (await r.json())["error"]
        async with http.get(f"{web_engine.url}/ui/assets/..%2F..%2F__init__.py") as r:
            assert r.status == 404
        async with http.get(f"{web_engine.url}/runs?limit=1") as r:
            assert r.status == 200 and "runs" in await r.json()


TOKEN = "a-web-page-token-0123456789abcdef"


@in_module_loop
async def test_with_a_token_the_page_asks_for_it_once_and_uses_it_for_requests_and_the_event_stream(
    browser: BrowserContext, tmp_path: Path
) -> None:
    secured = Engine(tmp_path, graphs=("web_graphs",), env={"AWE_TOKEN": TOKEN})
    secured.token = TOKEN
    async with secured:
        await secured.start(workers=1)
        run_id = await secured.start_run("paced_review", {"pace": 0, "note": "with a token"})
        await secured.wait_finished(run_id)
        page = await browser.new_page()
        errors: list[str] = []
        stream_urls: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("websocket", lambda ws: stream_urls.append(ws.url))
        try:
            await page.goto(f"{secured.url}/#/runs/{run_id}")
            form = page.get_by_test_id("token-form")
            await expect(form).to_be_visible(timeout=WAIT_MS)  # the API said 401: the page asks
            await page.get_by_test_id("token-input").fill("a-wrong-token-0123456789")
            await form.get_by_role("button").click()
            await expect(form).to_be_visible(timeout=WAIT_MS)  # refused again: asked again
            await page.get_by_test_id("token-input").fill(TOKEN)
            await form.get_by_role("button").click()
            await expect(form).to_be_hidden(timeout=WAIT_MS)
            await expect(page.get_by_test_id("run-status")).to_have_text("completed", timeout=WAIT_MS)
            await expect(page.locator('.state-table tr[data-key="note"] pre.value')).to_have_text("with a token")
            await expect(page.locator('.event-row[data-event="run_completed"]')).to_have_count(1, timeout=WAIT_MS)
            assert any(f"token={TOKEN}" in url for url in stream_urls), stream_urls
            # Kept for the tab: a reload asks nothing.
            await page.reload()
            await expect(page.get_by_test_id("run-status")).to_have_text("completed", timeout=WAIT_MS)
            await expect(form).to_be_hidden()
        finally:
            await page.close()
    # Chromium logs each refused request (401) as a console error; anything else is a defect.
    assert [e for e in errors if "401" not in e] == [], errors
