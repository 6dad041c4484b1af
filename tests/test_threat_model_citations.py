"""Every test docs/threat-model.md cites exists.

The threat model names the test of each defence, in code spans: an exact name
(``test_replayed_message_is_rejected``), a prefix (``test_counter_bomb*``, any test whose
name starts so), a file (``tests/e2e/test_crash.py``, a glob allowed), or a name in a
file (``tests/e2e/test_burn.py::test_burn_killed_at_each_step_completes_on_next_start``).
A citation that matches nothing is a claim with no test behind it. The tests are found
by reading the source (AST), not by importing it: a module that fails to import still
has its names checked, and nothing runs.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "threat-model.md"
TESTS = ROOT / "tests"

_SPAN = re.compile(r"`([^`\n]+)`")
_NAME = re.compile(r"test_[A-Za-z0-9_]+\*?")
_PATH = re.compile(r"tests/[A-Za-z0-9_/*.-]*")


@dataclass(frozen=True)
class Citation:
    """One cited test: a name pattern (exact, or a prefix ending in ``*``), a file glob, or both."""

    line: int
    path: str | None
    name: str | None

    def __str__(self) -> str:
        return "::".join(part for part in (self.path, self.name) if part is not None)


def citations(text: str) -> list[Citation]:
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for span in _SPAN.findall(line):
            path, _, name = span.partition("::") if "::" in span else ("", "", span)
            if not path and _PATH.fullmatch(name):
                path, name = name, ""
            if path and not _PATH.fullmatch(path):
                continue  # not a test file (fuzz/, src/, ...)
            if name and not _NAME.fullmatch(name):
                continue  # prose such as test_<attack>, or not a test name at all
            if path or name:
                found.append(Citation(number, path or None, name or None))
    return found


@cache
def defined_tests() -> dict[str, frozenset[str]]:
    """Test file (relative to the root) -> the names of its test functions and methods."""
    out: dict[str, frozenset[str]] = {}
    for path in sorted(TESTS.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        names = set()
        for node in tree.body:
            bodies = [node]
            if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                bodies = list(node.body)
            for item in bodies:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name.startswith("test_"):
                    names.add(item.name)
        out[path.relative_to(ROOT).as_posix()] = frozenset(names)
    return out


def matches(citation: Citation, functions: dict[str, frozenset[str]]) -> list[str]:
    """Every test (``file::name``), or every file or directory, the citation stands for."""
    if citation.path is not None and citation.path.endswith("/"):
        directory = (ROOT / citation.path).resolve()
        return [citation.path] if directory.is_dir() and TESTS in (directory, *directory.parents) else []
    files = [f for f in functions if citation.path is None or fnmatchcase(f, citation.path)]
    if citation.name is None:
        return files
    if citation.name.endswith("*"):
        prefix = citation.name[:-1]
        return [f"{f}::{n}" for f in files for n in sorted(functions[f]) if n.startswith(prefix)]
    return [f"{f}::{citation.name}" for f in files if citation.name in functions[f]]


CITED = citations(DOC.read_text())


def test_the_threat_model_cites_tests() -> None:
    # If the extraction broke, every check below would pass on nothing.
    assert len(CITED) >= 40
    assert Citation(0, None, "test_replayed_message*") in {Citation(0, c.path, c.name) for c in CITED}
    assert any(c.path is not None and c.name is not None for c in CITED)


@pytest.mark.parametrize("citation", CITED, ids=str)
def test_cited_test_exists(citation: Citation) -> None:
    found = matches(citation, defined_tests())
    assert found, f"docs/threat-model.md line {citation.line} cites {citation}, which matches no test"


def test_the_matcher_finds_what_it_should_and_nothing_else() -> None:
    functions = {"tests/a/test_x.py": frozenset({"test_one_thing", "test_other"})}
    assert matches(Citation(0, None, "test_one*"), functions) == ["tests/a/test_x.py::test_one_thing"]
    assert matches(Citation(0, None, "test_one"), functions) == []
    assert matches(Citation(0, "tests/a/test_*.py", "test_other"), functions) == [
        "tests/a/test_x.py::test_other"
    ]
    assert matches(Citation(0, "tests/b/test_x.py", "test_other"), functions) == []
    assert matches(Citation(0, "tests/a/test_x.py", None), functions) == ["tests/a/test_x.py"]
    text = "`test_a*`, `tests/e/test_b.py::test_c`, `tests/u/`, `test_<attack>`, `fuzz/f.py`, `x`"
    assert [str(c) for c in citations(text)] == ["test_a*", "tests/e/test_b.py::test_c", "tests/u/"]
