"""The review's result for a person: a unified diff against the input and a short Markdown report.

Both are bounded: the report lists at most :data:`MAX_LISTED` findings,
suggestions and fixes (saying how many more there are), so a big package gives
a report one can read and a state of reasonable size.
"""

from __future__ import annotations

import difflib
from collections import Counter
from typing import Any

from awe.graphs.code_review.score import MAX_ITERATIONS, NOTHING_TO_FIX, THRESHOLD_REACHED

MAX_LISTED = 40

SUGGESTIONS = {
    "high-complexity": "split it into smaller functions, one decision each, or replace branches with a lookup table",
    "long-function": "extract the steps into named helpers",
    "too-many-arguments": "group related arguments into a dataclass, or make some keyword-only with defaults",
    "deep-nesting": "return early, or move the inner blocks into a helper",
    "missing-docstring": "say in a docstring what it is for and what it returns",
    "eval-exec": "parse the input (ast.literal_eval, json) or dispatch on a table of allowed names",
}
"""What to do about the findings no automatic fix addresses; suggestions, not edits."""

STOP_REASONS = {
    THRESHOLD_REACHED: "the score reached the threshold",
    NOTHING_TO_FIX: "nothing more could be fixed automatically",
    MAX_ITERATIONS: "the maximum number of passes was reached",
}


def unified_diff(before: dict[str, str], after: dict[str, str]) -> str:
    """One unified diff of every changed file, ``a/path`` against ``b/path``."""
    parts = []
    for path, old in before.items():
        new = after.get(path, old)
        if new != old:
            lines = difflib.unified_diff(
                old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{path}", f"b/{path}"
            )
            parts.append("".join(line if line.endswith("\n") else line + "\n" for line in lines))
    return "".join(parts)


def markdown(state: dict[str, Any], threshold: float) -> str:
    """The report: verdict, scores per pass, fixes, findings before and after, suggestions, complexity, LLM."""
    sections = [
        _verdict(state, threshold),
        _scores(state),
        _fixes(state),
        _findings(state),
        _suggestions(state),
        _complexity(state),
        _llm(state),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def _verdict(state: dict[str, Any], threshold: float) -> str:
    files = len(state.get("sources") or {}) + len(
        [f for f in state.get("input_findings") or [] if f["rule"] == "source-too-large"]
    )
    score = state.get("quality_score", 0)
    reason = STOP_REASONS.get(state.get("stop_reason") or "", "the review did not finish its loop")
    passes = int(state.get("iteration") or 0)
    functions = len(state.get("functions") or [])
    return (
        f"# Code review: quality {score}/100 (threshold {threshold:g})\n\n"
        f"{_count(files, 'file')}, {_count(functions, 'function')}. Stopped after {_count(passes, 'pass')}: {reason}."
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "es" if noun.endswith("s") else "s")


def _scores(state: dict[str, Any]) -> str:
    rows = [f"| {s['iteration']} | {s['quality_score']} | {s['findings']} |" for s in state.get("scores") or []]
    return "## Score per pass\n\n| pass | score | findings |\n|---|---|---|\n" + "\n".join(rows)


def _fixes(state: dict[str, Any]) -> str:
    lines = []
    for record in state.get("refactorings") or []:
        for fix in record["fixes"]:
            what = f"`{fix['name']}`" if fix.get("name") else ""
            lines.append(f"- `{fix['file']}:{fix['line']}` {fix['rule']} {what}".rstrip())
        for declined in record["declined"]:
            lines.append(
                f"- not applied in `{declined['file']}` ({', '.join(declined['rules'])}): {declined['reason']}"
            )
        lines += [f"- doctests of `{path}`: {note}" for path, note in record["doctests"].items()]
    if not lines:
        return "## Fixes applied\n\nNone."
    return "## Fixes applied\n\n" + _bounded(lines)


def _findings(state: dict[str, Any]) -> str:
    before = Counter(f["rule"] for f in state.get("findings_before") or [])
    after = Counter(f["rule"] for f in state.get("findings") or [])
    rows = [f"| {rule} | {before[rule]} | {after[rule]} |" for rule in sorted(before | after)]
    table = "| rule | before | after |\n|---|---|---|\n" + "\n".join(rows) if rows else "No findings."
    remaining = [_finding_line(f) for f in state.get("findings") or [] if f["rule"] not in SUGGESTIONS]
    listed = "\n\n### Remaining findings\n\n" + _bounded(remaining) if remaining else ""
    return "## Findings\n\n" + table + listed


def _suggestions(state: dict[str, Any]) -> str:
    lines = [
        f"{_finding_line(f)}. Suggestion: {SUGGESTIONS[f['rule']]}."
        for f in state.get("findings") or []
        if f["rule"] in SUGGESTIONS
    ]
    return "## Suggestions (not applied)\n\n" + _bounded(lines) if lines else ""


def _finding_line(f: dict[str, Any]) -> str:
    where = f"{f['file']}:{f['line']}" if f.get("line") else f["file"]
    scope = f" in `{f['function']}`" if f.get("function") and f["function"] != "<module>" else ""
    return f"- `{where}` **{f['severity']}** {f['rule']}{scope}: {f['message']}"


def _complexity(state: dict[str, Any]) -> str:
    ranked = sorted(state.get("complexity") or [], key=lambda c: -c["complexity"])[:10]
    if not ranked:
        return ""
    rows = [
        f"| `{c['function']}` | {c['file']}:{c['line']} | {c['complexity']} ({c['rank']}) "
        f"| {c['maintainability']} ({c['maintainability_rank']}) |"
        for c in ranked
    ]
    files = [
        f"| {path} | {m['maintainability']} ({m['maintainability_rank']}) "
        f"| {m['average_complexity']} ({m['average_complexity_rank']}) |"
        for path, m in (state.get("maintainability") or {}).items()
        if m["maintainability"] is not None
    ]
    return (
        "## Complexity (radon)\n\n| function | where | cyclomatic (rank) | maintainability index (rank) |\n"
        "|---|---|---|---|\n"
        + "\n".join(rows)
        + (
            "\n\n| file | maintainability index (rank) | average cyclomatic (rank) |\n|---|---|---|\n"
            + "\n".join(files)
            if files
            else ""
        )
    )


def _llm(state: dict[str, Any]) -> str:
    review = state.get("llm_review") or {"status": "skipped", "reason": "the LLM step did not run"}
    if review["status"] == "done":
        return f"## LLM review ({review['model']})\n\n{review['answer']}"
    if review["status"] == "failed":
        return f"## LLM review\n\nFailed after {review['attempts']} attempts: {review['error']}"
    return f"## LLM review\n\nSkipped: {review['reason']}."


def _bounded(lines: list[str]) -> str:
    shown = lines[:MAX_LISTED]
    more = len(lines) - len(shown)
    return "\n".join(shown) + (f"\n- ... and {more} more" if more else "")
