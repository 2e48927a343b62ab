"""What the review reads: the submitted source(s), the settings, and the limits that keep a run bounded.

The input is ``raw_code`` (one source, reviewed as :data:`RAW_CODE_PATH`) or
``files`` (``{path: source}``, a small package). Each file is checked here once,
on the first pass: one that is too large is not analysed and becomes a
``source-too-large`` finding instead, so a 2 MB paste ends in a clear result in
seconds rather than minutes of parsing.
"""

from __future__ import annotations

from typing import Any

from awe.graphs.code_review.findings import finding

RAW_CODE_PATH = "snippet.py"
"""The name ``raw_code`` is reviewed under: it heads the diff and names the file in findings."""

DEFAULT_QUALITY_THRESHOLD = 80
DEFAULT_MAX_ITERATIONS = 3

MAX_FILE_BYTES = 1_000_000
"""Larger files are not analysed: libcst alone takes about 3 s per MB on one core, and a review
parses each file several times per pass."""
MAX_TOTAL_BYTES = 2_000_000
"""Across ``files``: files past this budget (in path order) are not analysed."""
MAX_FILES = 200
MAX_PATH_CHARS = 300


class ReviewInputError(ValueError):
    """The initial state does not say what to review; the message names the field and the fix."""


def submitted(state: dict[str, Any]) -> dict[str, str]:
    """``{path: source}`` as submitted: ``raw_code`` under :data:`RAW_CODE_PATH`, or ``files``."""
    raw, files = state.get("raw_code"), state.get("files")
    if raw is not None and files is not None:
        raise ReviewInputError("give either initial_state['raw_code'] or initial_state['files'], not both")
    if files is not None:
        return _checked_files(files)
    if not isinstance(raw, str):
        raise ReviewInputError(
            "code_review_agent needs initial_state['raw_code']: the Python source to review, as a string "
            "(or initial_state['files']: {path: source})"
        )
    return {RAW_CODE_PATH: raw}


def _checked_files(files: Any) -> dict[str, str]:
    if not isinstance(files, dict) or not files:
        raise ReviewInputError("initial_state['files'] must be a non-empty object of {path: Python source}")
    if len(files) > MAX_FILES:
        raise ReviewInputError(f"initial_state['files'] has {len(files)} files; review at most {MAX_FILES} at once")
    for path, source in files.items():
        if not path or len(path) > MAX_PATH_CHARS or path.startswith("/") or ".." in path.split("/"):
            raise ReviewInputError(f"initial_state['files']: {path[:80]!r} is not a relative path inside the package")
        if not isinstance(source, str):
            raise ReviewInputError(f"initial_state['files'][{path!r}] must be the file's source, as a string")
    return {path: files[path] for path in sorted(files)}


def within_limits(files: dict[str, str]) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The files small enough to analyse, and a ``source-too-large`` finding for each of the others."""
    kept: dict[str, str] = {}
    refused: list[dict[str, Any]] = []
    total = 0
    for path, source in files.items():
        size = len(source.encode("utf-8", "surrogatepass"))
        if size > MAX_FILE_BYTES:
            why = f"{size:,} bytes is more than the {MAX_FILE_BYTES:,} a file may have"
        elif total + size > MAX_TOTAL_BYTES:
            why = f"the files before it already use the {MAX_TOTAL_BYTES:,}-byte budget of one review"
        else:
            kept[path] = source
            total += size
            continue
        message = f"not analysed: {why}; review it in smaller parts"
        refused.append(finding(path, None, "source-too-large", message))
    return kept, refused


def setting(state: dict[str, Any], key: str, default: int) -> float:
    """A number from the initial state (``"90"`` counts), or ``default`` when absent or null."""
    value = state.get(key)
    if value is None:
        return float(default)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ReviewInputError(f"initial_state[{key!r}] must be a number, got {value!r}") from None
