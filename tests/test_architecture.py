"""The layering rules of docs/architecture.md, checked on the source itself.

1. The sans-IO modules (``protocol/``, ``relay/protocol/``, ``wire.py`` and ``vault/format.py``)
   import no I/O, clock, randomness or concurrency module: time and randomness come in as
   arguments (``now``, ``rng``).
2. Only ``burnerkit.crypto`` imports ``cryptography``.
3. ``burnerkit.crypto`` imports nothing from the layers above it.
4. import-linter's contracts in pyproject.toml hold, and they do bite.

Rule 1 is an AST walk rather than an import-linter contract because the banned names are
standard-library modules, which import-linter handles poorly (STYLE.md §2).
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PACKAGE = SRC / "burnerkit"

BANNED_IN_PURE = frozenset(
    {
        "asyncio",
        "socket",
        "sqlite3",
        "redis",
        "time",
        "os",
        "random",
        "pathlib",
        "subprocess",
        "threading",
        # Not in the brief's list, but a dynamic import would walk around every rule here.
        "importlib",
    }
)


def pure_modules() -> list[Path]:
    files = sorted((PACKAGE / "protocol").glob("*.py"))
    files += sorted((PACKAGE / "relay" / "protocol").glob("*.py"))
    files += [p for p in (PACKAGE / "wire.py", PACKAGE / "vault" / "format.py") if p.exists()]
    return files


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module an AST imports, relative imports resolved; ``__import__("x")`` counts too."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # `from burnerkit import protocol` imports burnerkit.protocol.
            found.update(f"{target}.{alias.name}" for alias in node.names if alias.name != "*")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def imports_of(path: Path) -> set[str]:
    return imported_modules(
        path.read_text(encoding="utf-8"), module_name(path), is_package=path.name == "__init__.py"
    )


def top(name: str) -> str:
    return name.partition(".")[0]


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


# -- the walker itself ---------------------------------------------------------------------------


def test_walker_sees_every_form_of_import() -> None:
    source = "\n".join(
        [
            "import os.path",
            "import socket as s",
            "from time import monotonic",
            "from . import codec",
            "from .ratchet import DoubleRatchet",
            "from ..crypto import kdf",
            "x = __import__('sqlite3')",
            "def f():",
            "    import asyncio",
        ]
    )
    found = imported_modules(source, "burnerkit.protocol.session")
    assert {"os.path", "socket", "time", "sqlite3", "asyncio"} <= found
    assert {"burnerkit.protocol.codec", "burnerkit.protocol.ratchet", "burnerkit.crypto.kdf"} <= found
    assert {top(name) for name in found} & BANNED_IN_PURE == {"os", "socket", "time", "sqlite3", "asyncio"}


def test_the_pure_modules_are_where_we_think() -> None:
    names = {p.name for p in pure_modules()}
    assert {"wire.py", "envelope.py", "handshake.py", "ratchet.py", "session.py"} <= names


# -- the rules -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", pure_modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_pure_modules_import_no_io(path: Path) -> None:
    banned = sorted(name for name in imports_of(path) if top(name) in BANNED_IN_PURE)
    assert banned == [], f"{path.relative_to(ROOT)} imports {banned}"


def test_only_crypto_imports_cryptography() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if within(module_name(path), "burnerkit.crypto"):
            continue
        names = sorted(name for name in imports_of(path) if top(name) == "cryptography")
        if names:
            offenders[str(path.relative_to(ROOT))] = names
    assert offenders == {}


def test_crypto_imports_nothing_from_above() -> None:
    offenders = {}
    for path in sorted((PACKAGE / "crypto").rglob("*.py")):
        names = sorted(
            name
            for name in imports_of(path)
            if top(name) == "burnerkit"
            and not within(name, "burnerkit.crypto")
            and not within(name, "burnerkit.errors")
        )
        if names:
            offenders[str(path.relative_to(ROOT))] = names
    assert offenders == {}


def test_errors_imports_nothing_from_burnerkit() -> None:
    assert {name for name in imports_of(PACKAGE / "errors.py") if top(name) == "burnerkit"} == set()


# -- import-linter ---------------------------------------------------------------------------------

LINT_IMPORTS = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which(
    "lint-imports"
)
needs_linter = pytest.mark.skipif(LINT_IMPORTS is None, reason="import-linter is not installed")


def run_lint_imports(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    assert LINT_IMPORTS is not None
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@needs_linter
def test_import_linter_contracts_are_kept(tmp_path: Path) -> None:
    result = run_lint_imports(tmp_path, SRC)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout  # the summary line: "Contracts: N kept, 0 broken."
    assert " 0 broken" in result.stdout


def plant(tmp_path: Path, module: str, line: str) -> Path:
    """A copy of the package with ``line`` appended to ``module`` (created if missing)."""
    copy = tmp_path / "src"
    shutil.copytree(PACKAGE, copy / "burnerkit", ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "burnerkit" / module
    target.parent.mkdir(parents=True, exist_ok=True)
    (target.parent / "__init__.py").touch()
    old = target.read_text(encoding="utf-8") if target.exists() else ""
    target.write_text(old + f"\n{line}  # planted by the test\n", encoding="utf-8")
    return copy


@needs_linter
@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("wire.py", "import cryptography.hazmat", "Only burnerkit.crypto imports cryptography"),
        ("crypto/kdf.py", "import burnerkit.protocol.envelope", "Layers point downward"),
    ],
)
def test_import_linter_contracts_bite(tmp_path: Path, module: str, line: str, contract: str) -> None:
    result = run_lint_imports(tmp_path, plant(tmp_path, module, line))
    assert result.returncode != 0, result.stdout
    assert f"{contract} BROKEN" in result.stdout


@needs_linter
def test_import_linter_covers_a_new_subpackage(tmp_path: Path) -> None:
    result = run_lint_imports(tmp_path, plant(tmp_path, "vault/format.py", "import cryptography"))
    assert result.returncode != 0, result.stdout


@needs_linter
def test_import_linter_keeps_each_library_and_the_core_where_they_belong(tmp_path: Path) -> None:
    # One copy, one planted import per contract (one lint run: each costs a second or two).
    planted = {
        "relay/server/mailbox.py": ("import burnerkit.protocol.envelope", "The relay server cannot decrypt"),
        "app/home.py": ("import typer", "Only burnerkit.cli imports typer"),
        "app/durations.py": ("import websockets", "Only the relay transport and server import websockets"),
        "app/views.py": ("import sqlite3", "Only the relay stores and the vault import sqlite3"),
    }
    copy = None
    for module, (line, _) in planted.items():
        copy = plant(tmp_path, module, line) if copy is None else _append(copy, module, line)
    assert copy is not None
    result = run_lint_imports(tmp_path, copy)
    assert result.returncode != 0, result.stdout
    for _, contract in planted.values():
        assert f"{contract} BROKEN" in result.stdout, result.stdout


def _append(copy: Path, module: str, line: str) -> Path:
    target = copy / "burnerkit" / module
    target.write_text(
        target.read_text(encoding="utf-8") + f"\n{line}  # planted by the test\n", encoding="utf-8"
    )
    return copy
