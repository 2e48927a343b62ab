"""Behaviour-preserving fixes written with libcst, so every comment and the author's formatting survive.

Each fix takes a source and the fixable findings of its rule (from
:mod:`awe.graphs.code_review.findings`) and changes only what those findings
name, matched by line:

* ``unused-import``: the unused names are dropped from their import statement,
  and the statement when none is left; comments above a removed line move to
  the next statement; a block left empty gets ``pass``.
* ``bare-except``: ``except:`` becomes ``except Exception:``, so
  ``KeyboardInterrupt`` and ``SystemExit`` propagate again.
* ``mutable-default``: ``def f(x=[])`` becomes ``def f(x=None)`` with
  ``if x is None: x = []`` at the top of the body (after the docstring), so
  each call gets a fresh object. A caller that passed ``None`` explicitly now
  gets the literal too, the one change in behaviour, which is the intent.

Whether a fix kept the code working is :mod:`awe.graphs.code_review.verify`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider


class _Fixer(cst.CSTTransformer):
    """A transformer that knows each original node's line and records what it changed."""

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, findings: list[dict[str, Any]]) -> None:
        super().__init__()
        self.findings = findings
        self.applied: list[dict[str, Any]] = []

    def line(self, node: cst.CSTNode) -> int:
        return int(self.get_metadata(PositionProvider, node).start.line)


class _RemoveUnusedImports(_Fixer):
    def __init__(self, findings: list[dict[str, Any]]) -> None:
        super().__init__(findings)
        self.unused: dict[int, set[str]] = {}
        for f in findings:
            if f["rule"] == "unused-import":
                self.unused.setdefault(f["line"], set()).add(f["name"])
        self._orphaned: list[cst.EmptyLine] = []
        self._carry: dict[int, list[cst.EmptyLine]] = {}

    def leave_Import(self, original: cst.Import, updated: cst.Import) -> cst.Import | cst.RemovalSentinel:
        unused = self.unused.get(self.line(original), set())
        kept = [a for a in updated.names if _pyflakes_name(a, None) not in unused]
        result: cst.Import | cst.RemovalSentinel = self._keep(original, updated, kept, None)
        return result

    def leave_ImportFrom(
        self, original: cst.ImportFrom, updated: cst.ImportFrom
    ) -> cst.ImportFrom | cst.RemovalSentinel:
        if isinstance(updated.names, cst.ImportStar):
            return updated
        unused = self.unused.get(self.line(original), set())
        module = _module_name(updated)
        kept = [a for a in updated.names if _pyflakes_name(a, module) not in unused]
        result: cst.ImportFrom | cst.RemovalSentinel = self._keep(original, updated, kept, module)
        return result

    def _keep(self, original: Any, updated: Any, kept: list[cst.ImportAlias], module: str | None) -> Any:
        removed = [a for a in updated.names if a not in kept]
        line = self.line(original)
        self.applied += [{"rule": "unused-import", "line": line, "name": _pyflakes_name(a, module)} for a in removed]
        if not removed:
            return updated
        if not kept:
            return cst.RemoveFromParent()
        kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return updated.with_changes(names=kept)

    def on_visit(self, node: cst.CSTNode) -> bool:
        if self._orphaned and isinstance(node, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
            self._carry[id(node)] = self._orphaned
            self._orphaned = []
        return super().on_visit(node)

    def leave_SimpleStatementLine(
        self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine
    ) -> cst.SimpleStatementLine | cst.RemovalSentinel:
        if not updated.body:  # every statement on the line was an import that went
            self._orphaned = _merged(self._orphaned, list(original.leading_lines))
            return cst.RemoveFromParent()
        kept: cst.SimpleStatementLine = self._with_carried(original, updated)
        return kept

    def on_leave(self, original: cst.CSTNode, updated: cst.CSTNode) -> Any:
        result = super().on_leave(original, updated)
        if isinstance(result, cst.BaseCompoundStatement):
            return self._with_carried(original, result)
        return result

    def _with_carried(self, original: cst.CSTNode, updated: Any) -> Any:
        carried = self._carry.pop(id(original), None)
        if carried is None:
            return updated
        return updated.with_changes(leading_lines=_merged(carried, list(updated.leading_lines)))

    def leave_IndentedBlock(self, original: cst.IndentedBlock, updated: cst.IndentedBlock) -> cst.IndentedBlock:
        if updated.body:
            return updated
        return updated.with_changes(body=[cst.SimpleStatementLine(body=[cst.Pass()])])

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        if self._orphaned:  # comments above a removed last statement stay at the end of the file
            return updated.with_changes(footer=[*self._orphaned, *updated.footer])
        return updated


def _merged(first: list[cst.EmptyLine], then: list[cst.EmptyLine]) -> list[cst.EmptyLine]:
    """The lines above a removed statement followed by those above the next one.

    Comments keep their place; blank lines alone are not doubled (the longer run of them stays).
    """
    if any(line.comment is not None for line in first):
        return [*first, *then]
    blank_then = next((i for i, line in enumerate(then) if line.comment is not None), len(then))
    return [*(first if len(first) > blank_then else then[:blank_then]), *then[blank_then:]]


def _module_name(node: cst.ImportFrom) -> str:
    dots = "." * len(node.relative)
    return dots + ("" if node.module is None else cst.Module([]).code_for_node(node.module))


def _pyflakes_name(alias: cst.ImportAlias, module: str | None) -> str:
    """The name pyflakes gives an import in its message: ``os.path``, ``a.b as c``, ``.x``."""
    name = cst.Module([]).code_for_node(alias.name)
    if module is not None:
        name = module + name if module.endswith(".") else f"{module}.{name}"
    if alias.asname is not None:
        name += " as " + cst.Module([]).code_for_node(alias.asname.name)
    return name


class _NarrowBareExcepts(_Fixer):
    def leave_ExceptHandler(self, original: cst.ExceptHandler, updated: cst.ExceptHandler) -> cst.ExceptHandler:
        line = self.line(original)
        if updated.type is not None or line not in {f["line"] for f in self.findings if f["rule"] == "bare-except"}:
            return updated
        self.applied.append({"rule": "bare-except", "line": line, "name": None})
        return updated.with_changes(type=cst.Name("Exception"), whitespace_after_except=cst.SimpleWhitespace(" "))


class _NoneForMutableDefaults(_Fixer):
    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        targets = {(f["line"], f["name"]) for f in self.findings if f["rule"] == "mutable-default"}
        guards: list[cst.BaseStatement] = []
        params = updated.params
        for kind in ("params", "kwonly_params", "posonly_params"):
            new = []
            for before, after in zip(getattr(original.params, kind), getattr(params, kind), strict=True):
                name = before.name.value
                if before.default is None or (self.line(before.default), name) not in targets:
                    new.append(after)
                    continue
                default = cst.Module([]).code_for_node(before.default)
                guards.append(cst.parse_statement(f"if {name} is None:\n    {name} = {default}\n"))
                self.applied.append({"rule": "mutable-default", "line": self.line(before.default), "name": name})
                new.append(after.with_changes(default=cst.Name("None")))
            params = params.with_changes(**{kind: new})
        if not guards:
            return updated
        return updated.with_changes(params=params, body=_with_guards(updated.body, guards))


def _with_guards(body: cst.BaseSuite, guards: Sequence[cst.BaseStatement]) -> cst.BaseSuite:
    """The body with ``guards`` first, after a docstring if there is one."""
    if isinstance(body, cst.SimpleStatementSuite):  # def f(x=[]): return x
        statements: list[cst.BaseStatement] = [cst.SimpleStatementLine(body=body.body)]
        return cst.IndentedBlock(body=[*guards, *statements])
    assert isinstance(body, cst.IndentedBlock)
    start = 1 if body.body and _is_docstring(body.body[0]) else 0
    return body.with_changes(body=[*body.body[:start], *guards, *body.body[start:]])


def _is_docstring(statement: cst.BaseStatement) -> bool:
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and len(statement.body) == 1
        and isinstance(statement.body[0], cst.Expr)
        and isinstance(statement.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


class _AllFixes(_RemoveUnusedImports, _NarrowBareExcepts, _NoneForMutableDefaults):
    """Every fix in one pass over one tree, so each finding's line still names what it found."""


FIXED_RULES = ("unused-import", "bare-except", "mutable-default")


def apply_fixes(code: str, findings: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """``code`` with the fixes for ``findings`` (fixable ones of :data:`FIXED_RULES`), and the fixes applied.

    Raises ``libcst.ParserSyntaxError`` on code libcst cannot parse and
    ``RecursionError`` on code nested too deeply for it.
    """
    fixer = _AllFixes([f for f in findings if f["rule"] in FIXED_RULES])
    fixed = MetadataWrapper(cst.parse_module(code)).visit(fixer)
    return fixed.code, sorted(fixer.applied, key=lambda a: (a["line"], a["rule"]))
