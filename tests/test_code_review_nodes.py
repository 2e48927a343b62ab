"""The Code Review Agent's analysis, fixes, score and report, node by node in this process (no engine).

The end-to-end runs through real processes are in test_code_review_engine.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from code_review_helpers import MESSY, SAMPLES, review

from awe.graphs.code_review import code_review_agent, nodes, quality_score
from awe.graphs.code_review.findings import MAX_COMPLEXITY
from awe.graphs.code_review.sources import MAX_FILE_BYTES, ReviewInputError

MESSY_FINDINGS = [
    # (line, rule, severity, fixable)
    (3, "unused-import", "medium", True),
    (7, "mutable-default", "high", True),
    (28, "eval-exec", "high", False),
    (29, "bare-except", "high", True),
    (33, "high-complexity", "high", False),
    (33, "too-many-arguments", "medium", False),
    (63, "missing-docstring", "low", False),
]

MESSY_DIFF = (SAMPLES / "messy_orders.diff").read_text()


@pytest.fixture(scope="module")
def messy() -> dict:
    return review({"raw_code": MESSY})


def test_the_messy_file_gives_the_findings_a_reviewer_sees_first(messy: dict) -> None:
    found = [(f["line"], f["rule"], f["severity"], f["fixable"]) for f in messy["findings_before"]]
    assert found == MESSY_FINDINGS
    by_rule = {f["rule"]: f for f in messy["findings_before"]}
    assert by_rule["unused-import"]["source"] == "pyflakes" and by_rule["unused-import"]["message"] == (
        "'os' imported but unused"
    )
    assert by_rule["high-complexity"]["function"] == "shipping"
    assert f"cyclomatic complexity 13 (rank C) > {MAX_COMPLEXITY}" in by_rule["high-complexity"]["message"]
    assert all(f["file"] == "snippet.py" for f in messy["findings_before"])


def test_the_messy_file_is_fixed_with_its_comments_and_formatting_kept(messy: dict) -> None:
    assert messy["diff"] == MESSY_DIFF
    fixed = messy["refactored_code"]
    assert fixed == messy["sources"]["snippet.py"]
    kept_comments = [line.split("#", 1)[1] for line in MESSY.splitlines() if "#" in line and "import os" not in line]
    assert kept_comments and all(comment in fixed for comment in kept_comments)
    fixes = [(f["line"], f["rule"], f["name"]) for r in messy["refactorings"] for f in r["fixes"]]
    assert fixes == [(3, "unused-import", "os"), (7, "mutable-default", "discounts"), (29, "bare-except", None)]
    assert messy["refactorings"][0]["doctests"] == {"snippet.py": "6 of 6 examples pass after the fixes"}


def test_the_refactored_messy_file_still_passes_its_doctests(messy: dict, tmp_path: Path) -> None:
    (tmp_path / "orders.py").write_text(messy["refactored_code"])
    check = "import doctest, orders; r = doctest.testmod(orders); print(r.attempted, r.failed)"
    out = subprocess.run(
        [sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.stdout.split() == ["6", "0"], out.stdout + out.stderr


def test_the_messy_file_scores_and_stops_with_what_is_left(messy: dict) -> None:
    assert [(s["iteration"], s["quality_score"], s["findings"]) for s in messy["scores"]] == [(1, 48, 7), (2, 73, 4)]
    assert messy["stop_reason"] == "nothing_to_fix"
    left = {"eval-exec", "high-complexity", "too-many-arguments", "missing-docstring"}
    assert {f["rule"] for f in messy["findings"]} == left
    report = messy["report"]
    assert report.startswith("# Code review: quality 73/100 (threshold 80)")
    assert "Stopped after 2 passes: nothing more could be fixed automatically." in report
    assert "| 1 | 48 | 7 |" in report and "| 2 | 73 | 4 |" in report
    assert "`snippet.py:34` **high** high-complexity in `shipping`" in report and "Suggestion: split it" in report
    assert "Skipped: AWE_LLM_URL is not set" in report


def test_a_missing_docstring_is_a_suggestion_not_an_edit(messy: dict) -> None:
    assert "def dumps(order):\n    return json.dumps" in messy["refactored_code"]
    assert "TODO: document" not in messy["refactored_code"]


def test_the_threshold_and_max_iterations_stop_the_loop() -> None:
    assert review({"raw_code": MESSY, "quality_threshold": 40})["stop_reason"] == "threshold_reached"
    capped = review({"raw_code": MESSY, "max_iterations": 1})
    assert capped["stop_reason"] == "max_iterations" and len(capped["scores"]) == 1
    assert "refactorings" not in capped and capped["diff"] == "" and capped["refactored_code"] == MESSY


def test_a_fix_that_breaks_a_doctest_is_declined_and_the_code_kept() -> None:
    # pyflakes sees `fractions` as unused, but the doctest needs it in the module's globals.
    source = textwrap.dedent(
        '''\
        """Halves.

        >>> fractions.Fraction(1, 2) + half()
        Fraction(1, 1)
        """
        import fractions
        from fractions import Fraction


        def half():
            """One half."""
            return Fraction(1, 2)
        '''
    )
    final = review({"raw_code": source, "quality_threshold": 100})
    (declined,) = final["refactorings"][0]["declined"]
    assert declined["rules"] == ["unused-import"] and "doctests: 1 of 1 failed after the fix" in declined["reason"]
    assert final["refactored_code"] == source and final["diff"] == ""
    assert final["stop_reason"] == "nothing_to_fix"
    assert "not applied in `snippet.py` (unused-import)" in final["report"]


def test_doctests_run_the_submitted_code_unless_switched_off(tmp_path: Path) -> None:
    ran = tmp_path / "RAN"
    source = f'"""\n>>> 1\n1\n"""\nimport os\nimport pathlib\npathlib.Path({str(ran)!r}).touch()\n'
    final = review({"raw_code": source, "run_doctests": False, "quality_threshold": 100})
    assert "not run (disabled" in final["refactorings"][0]["doctests"]["snippet.py"]
    assert "import os" not in final["refactored_code"] and not ran.exists()
    final = review({"raw_code": source, "quality_threshold": 100})
    assert final["refactorings"][0]["doctests"]["snippet.py"] == "1 of 1 examples pass after the fixes"
    assert ran.exists()  # in a child process, but it did run: hence the switch


def test_mutable_defaults_that_are_shared_on_purpose_are_left_alone() -> None:
    source = textwrap.dedent(
        '''\
        def count(line, seen=[0]):
            """Number the lines across calls."""
            seen[0] += 1
            return seen[0]


        def collect(item, bucket=[]):
            """Append to a shared list."""
            bucket.append(item)
            return bucket


        def pick(key, table={"a": 1}, names=list()):
            """Read only."""
            return table.get(key, len(names))
        '''
    )
    final = review({"raw_code": source})
    defaults = {f["name"]: f["fixable"] for f in final["findings_before"] if f["rule"] == "mutable-default"}
    assert defaults == {"seen": False, "bucket": False, "table": True, "names": True}
    fixed = final["refactored_code"]
    assert "def count(line, seen=[0]):" in fixed and "def collect(item, bucket=[]):" in fixed
    guarded = (
        'def pick(key, table=None, names=None):\n    """Read only."""\n    if table is None:\n        table = {"a": 1}'
    )
    assert guarded in fixed
    assert "    if names is None:\n        names = list()\n" in fixed


def test_unused_imports_that_may_be_an_interface_or_a_side_effect_stay() -> None:
    files = {
        "pkg/__init__.py": "from pkg.core import helper\n",
        "pkg/core.py": textwrap.dedent(
            """\
            import os
            import readline
            import sys
            from _speedups import fast
            try:
                import numpy
            except ImportError:
                numpy = None


            def helper():
                '''Help.'''
                return 1
            """
        ),
        "pkg/user.py": "from pkg.core import sys as s\n\n\ndef name():\n    '''A name.'''\n    return s.platform\n",
    }
    final = review({"files": files})
    unused = {(f["file"], f["name"]): f["fixable"] for f in final["findings_before"] if f["rule"] == "unused-import"}
    assert unused == {
        ("pkg/__init__.py", "pkg.core.helper"): False,
        ("pkg/core.py", "os"): True,
        ("pkg/core.py", "readline"): False,
        ("pkg/core.py", "sys"): False,  # pkg/user.py imports it from here
        ("pkg/core.py", "_speedups.fast"): False,
    }
    assert final["sources"]["pkg/core.py"] == files["pkg/core.py"].replace("import os\n", "", 1)
    assert final["diff"].startswith("--- a/pkg/core.py\n+++ b/pkg/core.py\n")


def test_removed_imports_keep_the_comments_above_them_and_blocks_stay_valid() -> None:
    source = "import sys\n\n# why we need json\nimport json\n\n\n"
    source += "def f():\n    '''F.'''\n    import re\n\n\ndef g():\n    import re\n"
    fixed = review({"raw_code": source + "\n\nprint(sys.argv)\n", "quality_threshold": 100})["refactored_code"]
    expected = "import sys\n\n# why we need json\n\n\ndef f():\n    '''F.'''\n\n\ndef g():\n    pass\n"
    assert fixed == expected + "\n\nprint(sys.argv)\n"


def test_functions_are_extracted_with_lines_arguments_and_docstrings() -> None:
    source = 'class Shop:\n    def buy(self, item, *, count=1):\n        """Buy it."""\n        def inner(): pass\n'
    final = review({"raw_code": source})
    records = {f["qualname"]: f for f in final["functions"]}
    assert set(records) == {"Shop.buy", "Shop.buy.inner"}
    buy = records["Shop.buy"]
    assert (buy["lineno"], buy["end_lineno"], buy["args"], buy["docstring"], buy["is_method"]) == (
        2,
        4,
        ["self", "item", "count"],
        "Buy it.",
        True,
    )
    measured = {c["function"]: (c["complexity"], c["rank"], c["maintainability_rank"]) for c in final["complexity"]}
    assert measured == {"Shop.buy": (1, "A", "A"), "Shop.buy.inner": (1, "A", "A")}
    assert all(0 < c["maintainability"] <= 100 for c in final["complexity"])
    per_file = final["maintainability"]["snippet.py"]
    assert (per_file["maintainability_rank"], per_file["average_complexity"], per_file["average_complexity_rank"]) == (
        "A",
        1.0,
        "A",
    )


def test_invalid_python_completes_with_a_syntax_error_finding_for_that_file() -> None:
    final = review({"files": {"ok.py": "def ok():\n    '''Fine.'''\n    return 1\n", "bad.py": "x = 1\ndef (:\n"}})
    (error,) = [f for f in final["findings"] if f["rule"] == "syntax-error"]
    assert (error["file"], error["line"], error["severity"]) == ("bad.py", 2, "high")
    assert error["message"] == "invalid syntax"
    assert final["quality_score"] == 0 and final["stop_reason"] == "nothing_to_fix"
    assert [f["qualname"] for f in final["functions"]] == ["ok"]  # the other file is still reviewed
    assert "`bad.py:2` **high** syntax-error: invalid syntax" in final["report"]


def test_an_empty_source_is_a_clear_result() -> None:
    final = review({"raw_code": ""})
    assert [(f["rule"], f["message"]) for f in final["findings"]] == [
        ("empty-source", "the source has no statements: there is nothing to review")
    ]
    assert final["quality_score"] == 100 and final["stop_reason"] == "threshold_reached"
    assert final["refactored_code"] == "" and final["diff"] == ""


def test_a_2_mb_source_ends_quickly_with_a_clear_finding() -> None:
    big = "x = 1\n" * (2 * 1024 * 1024 // 6 + 1)
    final = review({"raw_code": big})  # not parsed at all: a file that size is refused before any analysis
    (too_large,) = final["findings"]
    assert too_large["rule"] == "source-too-large" and f"{MAX_FILE_BYTES:,}" in too_large["message"]
    assert final["quality_score"] == 0 and final["stop_reason"] == "nothing_to_fix"
    assert "sources" in final and final["sources"] == {}  # the state does not hold a second copy


@pytest.mark.parametrize(
    ("state", "words"),
    [
        ({}, "initial_state['raw_code']"),
        ({"raw_code": 5}, "initial_state['raw_code']"),
        ({"raw_code": "x", "files": {"a.py": "x"}}, "not both"),
        ({"files": {"../a.py": "x"}}, "not a relative path"),
        ({"files": {"a.py": 3}}, "initial_state['files']['a.py'] must be the file's source"),
        ({"raw_code": "x = 1", "quality_threshold": "high"}, "initial_state['quality_threshold'] must be a number"),
    ],
)
def test_bad_input_is_a_clear_error(state: dict, words: str) -> None:
    with pytest.raises(ReviewInputError, match=re.escape(words)):
        review(state)


def test_hostile_sources_are_findings_not_crashes() -> None:
    deep_sum = "try:\n    pass\nexcept:\n    pass\n\n\ndef f():\n    '''F.'''\n    return " + "1+" * 1000 + "1\n"
    final = review({"raw_code": deep_sum, "quality_threshold": 100})
    (deep,) = [f for f in final["findings"] if f["rule"] == "too-deep-to-analyse"]
    causes = deep["message"].removeprefix("source is too deeply nested to analyse: ").split("; ")
    assert [c.split(":")[0] for c in causes] == [
        "pyflakes raised RecursionError",
        "radon cc_visit raised RecursionError",
        "radon mi_visit raised RecursionError",
    ]
    (declined,) = final["refactorings"][0]["declined"]  # the bare except is found, but libcst cannot rewrite it
    assert declined["reason"] == "the file is nested too deeply for libcst (RecursionError)"
    assert final["refactored_code"] == deep_sum and final["stop_reason"] == "nothing_to_fix"
    final = review({"raw_code": "x = " + "-" * 5000 + "1"})
    assert "RecursionError" in final["findings"][0]["message"]
    final = review({"raw_code": "x = 1\x00\n"})
    assert (final["findings"][0]["rule"], final["findings"][0]["line"]) == ("syntax-error", 1)
    final = review({"raw_code": "x = '\ud800'\n"})
    (surrogate,) = final["findings"]
    assert surrogate["rule"] == "syntax-error" and "'\\ud800' is not valid Unicode" in surrogate["message"]


def test_the_quality_score_formula() -> None:
    def f(severity: str, rule: str = "eval-exec") -> dict:
        return {"severity": severity, "rule": rule}

    assert quality_score([], {}, {"a.py": 10}) == 100
    assert quality_score([f("high"), f("medium"), f("low"), f("info")], {}, {"a.py": 50}) == 83
    assert quality_score([f("high")] * 3, {}, {"a.py": 300}) == 90  # per 100 lines
    assert quality_score([], {"a.py": {"maintainability": 5.0}}, {"a.py": 10}) == 85  # 20 - 5 below the floor
    assert quality_score([f("high", "syntax-error")], {}, {"a.py": 10}) == 0
    assert quality_score([f("high")] * 20, {}, {"a.py": 10}) == 0


def test_the_graph_loops_and_ends_with_the_llm_step_and_the_report() -> None:
    compiled = code_review_agent.compile()
    assert set(compiled.nodes) == {
        "extract_functions",
        "check_complexity",
        "detect_issues",
        "refactor",
        "llm_review",
        "write_report",
    }
    assert compiled.nodes["llm_review"].retry is not None and compiled.nodes["llm_review"].retry.max_attempts == 2


def test_doctests_that_never_end_are_stopped_with_what_they_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nodes, "DOCTEST_TIMEOUT_SECONDS", 1.0)
    pid_file = tmp_path / "pid"
    source = textwrap.dedent(
        f'''\
        """Hangs.

        >>> while True: pass
        """
        import os
        import subprocess

        child = subprocess.Popen(["sleep", "300"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        '''
    )
    final = review({"raw_code": source, "quality_threshold": 100})
    assert final["refactorings"][0]["doctests"] == {"snippet.py": "not checked: the doctests did not finish within 1 s"}
    assert "import os\n" not in final["refactored_code"]  # checked by parsing only, as the note says
    stat = Path(f"/proc/{int(pid_file.read_text())}/stat")
    # killed with the doctest process's group (a zombie until init reaps it)
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_a_bare_except_that_re_raises_is_reported_not_narrowed() -> None:
    source = "def save(f, data):\n    '''Save.'''\n    try:\n        f.write(data)\n"
    source += "    except:\n        f.close()\n        raise\n"
    final = review({"raw_code": source, "quality_threshold": 100})
    (bare,) = final["findings"]
    assert bare["rule"] == "bare-except" and not bare["fixable"] and "`except BaseException:`" in bare["message"]
    assert final["refactored_code"] == source and final["stop_reason"] == "nothing_to_fix"
