"""Check that a fix kept the code working: it must parse, and its doctests must pass as before.

Running doctests means running the submitted code, which is what a developer
asks for when they send code with doctests, and what a reviewer must not do in
its own process. So they run in a child process: ``python -I`` (no
``PYTHON*`` variables, no user site), in a fresh temporary folder holding only
the submitted files, with an environment of ``PATH`` alone, and a timeout
(:data:`DOCTEST_TIMEOUT_SECONDS`); the worker kills it at the timeout. That
bounds time, not what the code may do on the machine: set
``AWE_REVIEW_DOCTESTS=0`` in a worker's environment (or
``"run_doctests": false`` in the initial state) to never execute submitted
code; fixes are then checked by parsing only, and the report says so.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

DOCTEST_TIMEOUT_SECONDS = 20.0

_RUNNER = r"""
import doctest, importlib.util, json, sys
root, rel, out = sys.argv[1], sys.argv[2], sys.argv[3]
name = rel[:-3].replace("/", ".")
if name.endswith(".__init__"):
    name = name[: -len(".__init__")]
if name.split(".")[0] in sys.stdlib_module_names or name in sys.modules:
    name = "_reviewed_" + name.replace(".", "_")
sys.path.append(root)
spec = importlib.util.spec_from_file_location(name, root + "/" + rel)
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
try:
    spec.loader.exec_module(module)
except BaseException as exc:
    result = {"error": f"importing it raised {type(exc).__name__}: {exc}"[:300]}
else:
    failed, attempted = doctest.testmod(module, report=False)
    result = {"failed": failed, "attempted": attempted}
with open(out, "w") as f:
    json.dump(result, f)
"""


def doctests_enabled(state: dict[str, Any]) -> bool:
    return state.get("run_doctests") is not False and os.environ.get("AWE_REVIEW_DOCTESTS", "1") != "0"


def has_doctests(code: str) -> bool:
    return ">>>" in code


def parses(code: str) -> str | None:
    """``None`` if ``code`` parses, else why not."""
    try:
        ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return f"the fixed code does not parse: {type(exc).__name__}: {exc}"
    return None


def run_doctests(path: str, sources: dict[str, str], timeout: float = DOCTEST_TIMEOUT_SECONDS) -> dict[str, Any]:
    """``{"attempted", "failed"}`` for ``path``'s doctests, or ``{"error"}`` when they could not be run.

    ``sources`` (``{path: code}``) are all written out, so the module can import its siblings.
    """
    with tempfile.TemporaryDirectory(prefix="awe-review-") as folder:
        root = Path(folder) / "src"
        for name, code in sources.items():
            target = root / (name if name.endswith(".py") else name + ".py")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(code, encoding="utf-8", errors="surrogatepass")
        out = Path(folder) / "result.json"
        relative = path if path.endswith(".py") else path + ".py"
        command = [sys.executable, "-I", "-c", _RUNNER, str(root), relative, str(out)]
        if not _ran_in_time(command, folder, timeout):
            return {"error": f"the doctests did not finish within {timeout:g} s"}
        try:
            result: dict[str, Any] = json.loads(out.read_text())
        except (OSError, ValueError):
            return {"error": "the doctest process ended without a result (it exited or crashed while importing)"}
        return result


def _ran_in_time(command: list[str], folder: str, timeout: float) -> bool:
    """Run ``command``; past ``timeout``, kill its whole process group (what the code started too)."""
    process = subprocess.Popen(
        command,
        cwd=folder,
        env={"PATH": os.environ.get("PATH", "")},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        process.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return False


def still_passes(before: dict[str, Any], after: dict[str, Any]) -> str | None:
    """``None`` if the doctests pass after the fix as they did before it, else why not."""
    if "error" in after and "error" not in before:
        return f"the doctests no longer run: {after['error']}"
    if "error" in before:
        return None
    if after["attempted"] != before["attempted"] or after["failed"] > before["failed"]:
        return (
            f"doctests: {after['failed']} of {after['attempted']} failed after the fix, "
            f"{before['failed']} of {before['attempted']} before"
        )
    return None
