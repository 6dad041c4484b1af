"""The public surface is what ``__all__`` says it is (httpx ``test_exported_members``).

For every module of burnerkit: each name in ``__all__`` exists, none is listed twice, and
every public (non-underscore) class or function the module *defines* is listed. Names a
module merely imports are not its surface, unless it lists them on purpose
(``aead.Buffer``). A package ``__init__`` without public names needs no ``__all__``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types

import pytest

import burnerkit

MODULES = ["burnerkit", *sorted(m.name for m in pkgutil.walk_packages(burnerkit.__path__, "burnerkit."))]


def public_definitions(module: types.ModuleType) -> list[str]:
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    )


def public_names(module: types.ModuleType) -> list[str]:
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and name != "annotations" and not isinstance(value, types.ModuleType)
    )


def test_every_module_is_found() -> None:
    expected = {"burnerkit.errors", "burnerkit.crypto.kdf", "burnerkit.protocol.session"}
    assert expected <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_only_existing_names_once(name: str) -> None:
    module = importlib.import_module(name)
    listed = getattr(module, "__all__", None)
    if listed is None:
        assert public_names(module) == [], f"{name} has public names but no __all__"
        return
    assert all(isinstance(item, str) for item in listed)
    assert [item for item in listed if not hasattr(module, item)] == []
    assert len(listed) == len(set(listed)), "a name is listed twice"


@pytest.mark.parametrize(
    "name",
    [n for n in MODULES],
)
def test_every_public_definition_is_listed(name: str) -> None:
    module = importlib.import_module(name)
    listed = set(getattr(module, "__all__", ()))
    assert [item for item in public_definitions(module) if item not in listed] == []


def test_errors_all_is_the_whole_tree() -> None:
    from burnerkit import errors

    classes = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, errors.BurnerError)
    }
    assert classes == set(errors.__all__)
