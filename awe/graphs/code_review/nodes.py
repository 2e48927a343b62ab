"""The agent's nodes: each reads the state, calls one analysis module, and returns the keys it changes.

Nodes run in worker processes, so they are pure functions of the state (the
LLM step aside, which calls the model). Every node is also a tool
(``code_review.<node>``), so the JSON form of the agent
(``examples/code_review_agent.json``) calls the same code.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import libcst

from awe.graph.context import Context
from awe.graph.tools import tool
from awe.graphs.code_review import complexity, llm, report
from awe.graphs.code_review.extract import TOO_DEEP, function_records, parse
from awe.graphs.code_review.findings import file_findings, finding
from awe.graphs.code_review.refactor import FIXED_RULES, apply_fixes
from awe.graphs.code_review.score import quality_score, stop_reason
from awe.graphs.code_review.sources import (
    DEFAULT_MAX_ITERATIONS,
    DEFAULT_QUALITY_THRESHOLD,
    RAW_CODE_PATH,
    setting,
    submitted,
    within_limits,
)
from awe.graphs.code_review.verify import (
    DOCTEST_TIMEOUT_SECONDS,
    doctests_enabled,
    has_doctests,
    parses,
    run_doctests,
    still_passes,
)

_AST_LOCK = threading.Lock()
"""CPython 3.11 keeps the AST constructor's recursion depth in a way that two threads building deep
trees at the same moment can break (``SystemError: AST constructor recursion depth mismatch``). A
worker runs sync nodes in threads, so the agent's steps, which all parse, run one at a time in a
process; they are CPU-bound, so the GIL would have serialised them anyway."""

DOCTEST_BUDGET_SECONDS = 40.0
"""What one refactor pass may spend running doctests, across its files: the node's timeout is 60 s."""

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Step = Callable[[dict[str, Any]], dict[str, Any]]


def _one_at_a_time(step: Step) -> Step:
    @functools.wraps(step)
    def locked(state: dict[str, Any]) -> dict[str, Any]:
        with _AST_LOCK:
            return step(state)

    return locked


@tool("code_review.extract_functions")
@_one_at_a_time
def extract_functions(state: dict[str, Any]) -> dict[str, Any]:
    """Parse every source and list its functions (name, lines, arguments, docstring) for the later steps.

    On the first pass the sources come from ``raw_code`` or ``files`` (files too
    large to analyse become findings); later passes read the refactored
    ``sources``. A file that does not parse is recorded in ``syntax_errors``.
    """
    iteration = int(state.get("iteration") or 0)
    if iteration == 0 or not isinstance(state.get("sources"), dict):
        sources, input_findings = within_limits(submitted(state))
    else:
        sources, input_findings = state["sources"], state.get("input_findings") or []
    functions: list[dict[str, Any]] = []
    syntax_errors = []
    for path, code in sources.items():
        tree, error = parse(code)
        if tree is None:
            syntax_errors.append({"file": path, **(error or {})})
        else:
            functions += function_records(path, tree)
    return {
        "sources": sources,
        "input_findings": input_findings,
        "iteration": iteration + 1,
        "functions": functions,
        "syntax_errors": syntax_errors,
    }


@tool("code_review.check_complexity")
@_one_at_a_time
def check_complexity(state: dict[str, Any]) -> dict[str, Any]:
    """Measure cyclomatic complexity per function and maintainability per file with radon, with its letter ranks."""
    unparsable = {e["file"] for e in state.get("syntax_errors") or []}
    per_function: list[dict[str, Any]] = []
    per_file: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for path, code in state["sources"].items():
        if path in unparsable:
            continue
        functions = [f for f in state.get("functions") or [] if f["file"] == path]
        measured = complexity.measure(path, code, functions)
        per_function += measured["functions"]
        per_file[path] = measured["file"]
        errors += measured["errors"]
    return {"complexity": per_function, "maintainability": per_file, "analysis_errors": errors}


@tool("code_review.detect_issues")
@_one_at_a_time
def detect_issues(state: dict[str, Any]) -> dict[str, Any]:
    """Find the issues (pyflakes and awe's own checks), score the pass, and decide whether the loop stops.

    ``findings_before`` keeps the first pass's findings; ``scores`` gets one
    entry per pass; ``stop_reason`` is set once the loop should stop
    (``threshold_reached``, ``nothing_to_fix`` or ``max_iterations``).
    """
    findings = list(state.get("input_findings") or [])
    findings += [
        finding(e["file"], e.get("line"), "syntax-error", e["message"]) for e in state.get("syntax_errors") or []
    ]
    unparsable = {e["file"] for e in state.get("syntax_errors") or []}
    declined = state.get("declined") or {}
    words = {path: frozenset(_WORD.findall(code)) for path, code in state["sources"].items()}
    in_files = Counter(word for found in words.values() for word in found)
    for path, code in state["sources"].items():
        if path not in unparsable:
            elsewhere = functools.partial(_in_other_files, in_files, words[path])
            findings += _file_findings(state, path, code, declined.get(path, []), elsewhere)
    findings.sort(key=lambda f: (f["file"], f["line"] or 0, f["rule"], f["name"] or ""))
    lines = {path: code.count("\n") + (not code.endswith("\n")) for path, code in state["sources"].items() if code}
    score = quality_score(findings, state.get("maintainability") or {}, lines)
    iteration = int(state.get("iteration") or 0)
    passes = state.get("refactorings") or []
    reason = stop_reason(
        score,
        setting(state, "quality_threshold", DEFAULT_QUALITY_THRESHOLD),
        findings,
        iteration,
        setting(state, "max_iterations", DEFAULT_MAX_ITERATIONS),
        stuck=bool(passes) and not passes[-1]["fixes"],
    )
    scores = [*(state.get("scores") or []), {"iteration": iteration, "quality_score": score, "findings": len(findings)}]
    update = {"findings": findings, "quality_score": score, "scores": scores, "stop_reason": reason}
    if iteration <= 1:
        update["findings_before"] = findings
    return update


def _in_other_files(in_files: Counter[str], own: frozenset[str], word: str) -> bool:
    return in_files[word] > (word in own)


def _file_findings(
    state: dict[str, Any], path: str, code: str, declined: list[str], used_elsewhere: Callable[[str], bool]
) -> list[dict[str, Any]]:
    tree, error = parse(code)
    if tree is None:  # parsed in extract_functions, but the parser's depth limit counts the caller's frames too
        message = (error or {}).get("message", "the source could not be parsed again")
        return [finding(path, (error or {}).get("line"), "too-deep-to-analyse", message)]
    measured = {
        "functions": [c for c in state.get("complexity") or [] if c["file"] == path],
        "errors": [e for e in state.get("analysis_errors") or [] if e["file"] == path],
    }
    return file_findings(path, tree, measured, declined, used_elsewhere)


def review_gate(state: dict[str, Any]) -> str:
    """``"done"`` once ``detect_issues`` has set a ``stop_reason``, else ``"refactor"``."""
    return "done" if state.get("stop_reason") else "refactor"


@tool("code_review.refactor")
@_one_at_a_time
def refactor(state: dict[str, Any]) -> dict[str, Any]:
    """Apply the automatic fixes (libcst, comments and formatting kept), each file's checked before it is kept.

    A file's fixes are kept only if the result parses and its doctests pass as
    they did before; otherwise each rule is tried alone, and a rule whose fix
    fails is declined for that file for the rest of the run (and said so).
    """
    sources = dict(state["sources"])
    declined = {path: list(rules) for path, rules in (state.get("declined") or {}).items()}
    iteration = int(state.get("iteration") or 0)
    record: dict[str, Any] = {"iteration": iteration, "fixes": [], "declined": [], "doctests": {}}
    fixable: dict[str, list[dict[str, Any]]] = {}
    for f in state.get("findings") or []:
        if f["fixable"] and f["file"] in sources:
            fixable.setdefault(f["file"], []).append(f)
    deadline = time.monotonic() + DOCTEST_BUDGET_SECONDS
    for path, findings in fixable.items():
        checker = _Checker(path, sources, doctests_enabled(state), deadline)
        code, applied, refused = _fix_file(sources[path], findings, checker)
        sources[path] = code
        record["fixes"] += [{"file": path, **a} for a in applied]
        for rules, reason in refused:
            record["declined"].append({"file": path, "rules": rules, "reason": reason})
            declined.setdefault(path, []).extend(rules)
        if checker.note:
            record["doctests"][path] = checker.note
    return {"sources": sources, "declined": declined, "refactorings": [*(state.get("refactorings") or []), record]}


class _Checker:
    """Whether a fixed version of one file still works: it parses, and its doctests pass as before."""

    def __init__(self, path: str, sources: dict[str, str], doctests: bool, deadline: float) -> None:
        self.path, self.sources, self.doctests, self.deadline = path, sources, doctests, deadline
        self.before: dict[str, Any] | None = None
        self.note = ""

    def problem(self, fixed: str) -> str | None:
        broken = parses(fixed)
        if broken or not has_doctests(self.sources[self.path]):
            return broken
        if not self.doctests:
            self.note = "not run (disabled by run_doctests or AWE_REVIEW_DOCTESTS); the fixes were checked by parsing"
            return None
        if self.before is None:
            self.before = self._run(self.sources)
        if "error" in self.before:  # nothing to compare with: the fixes are checked by parsing only
            self.note = f"not checked: {self.before['error']}"
            return None
        after = self._run({**self.sources, self.path: fixed})
        if "error" not in after:
            self.note = f"{after['attempted'] - after['failed']} of {after['attempted']} examples pass after the fixes"
        return still_passes(self.before, after)

    def _run(self, sources: dict[str, str]) -> dict[str, Any]:
        left = self.deadline - time.monotonic()
        if left < 1.0:
            return {"error": f"this pass spent its {DOCTEST_BUDGET_SECONDS:g} s for doctests on other files"}
        return run_doctests(self.path, sources, timeout=min(DOCTEST_TIMEOUT_SECONDS, left))


def _fix_file(
    code: str, findings: list[dict[str, Any]], checker: _Checker
) -> tuple[str, list[dict[str, Any]], list[tuple[list[str], str]]]:
    """The fixed code, the fixes applied, and the ``(rules, reason)`` that had to be declined."""
    rules = sorted({f["rule"] for f in findings if f["rule"] in FIXED_RULES})
    fixed, applied, problem = _attempt(code, findings, rules, checker)
    if problem is None:
        return fixed, applied, []
    if len(rules) == 1:
        return code, [], [(rules, problem)]
    kept_rules, refused = [], []
    for rule in rules:
        _, _, alone = _attempt(code, findings, [rule], checker)
        if alone is None:
            kept_rules.append(rule)
        else:
            refused.append(([rule], alone))
    if not kept_rules:
        return code, [], refused
    fixed, applied, problem = _attempt(code, findings, kept_rules, checker)
    if problem is not None:
        return code, [], [*refused, (kept_rules, problem)]
    return fixed, applied, refused


def _attempt(
    code: str, findings: list[dict[str, Any]], rules: list[str], checker: _Checker
) -> tuple[str, list[dict[str, Any]], str | None]:
    try:
        fixed, applied = apply_fixes(code, [f for f in findings if f["rule"] in rules])
    except libcst.ParserSyntaxError as exc:
        return code, [], f"libcst cannot parse the file: {str(exc).splitlines()[0]}"
    except TOO_DEEP as exc:
        return code, [], f"the file is nested too deeply for libcst ({type(exc).__name__})"
    if not applied:
        return code, [], "no fix matched the findings"
    return fixed, applied, checker.problem(fixed)


@tool("code_review.llm_review")
async def llm_review(state: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Ask an OpenAI-compatible model (``AWE_LLM_URL``, ``AWE_LLM_MODEL``) to review the most complex functions.

    Skipped, with the reason, when no model is configured. A failing call is
    retried (it raises ``LLMCallFailed``); the last attempt's failure is
    recorded in ``llm_review`` and the report instead of failing the run.
    """
    settings, why_not = llm.endpoint(state)
    if settings is None:
        return {"llm_review": {"status": "skipped", "reason": why_not}}
    functions = llm.most_complex(state)
    if not functions:
        return {"llm_review": {"status": "skipped", "reason": "there are no functions to review"}}
    try:
        answer = await llm.ask(settings, llm.prompt(functions))
    except llm.LLMCallFailed as exc:
        if ctx.attempt < llm.ATTEMPTS:
            ctx.log.warning("llm_call_failed", error=str(exc), attempt=ctx.attempt)
            raise
        return {"llm_review": {"status": "failed", "error": str(exc), "attempts": ctx.attempt}}
    reviewed = [f["function"] for f in functions]
    return {"llm_review": {"status": "done", "model": settings["model"], "functions": reviewed, "answer": answer}}


@tool("code_review.write_report")
def write_report(state: dict[str, Any]) -> dict[str, Any]:
    """Write the result: the unified diff against the input, the Markdown report, and ``refactored_code``."""
    before = submitted(state)
    after = {path: state["sources"].get(path, code) for path, code in before.items()}
    update = {
        "diff": report.unified_diff(before, after),
        "report": report.markdown(state, setting(state, "quality_threshold", DEFAULT_QUALITY_THRESHOLD)),
    }
    if RAW_CODE_PATH in after and "raw_code" in state:
        update["refactored_code"] = after[RAW_CODE_PATH]
    return update
