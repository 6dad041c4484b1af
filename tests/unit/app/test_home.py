"""Where burners live (app/home.py): resolution order, listing, picking, names."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from burnerkit.app import home as home_module
from burnerkit.app.home import BURNING_MARKER, Home, check_name
from burnerkit.errors import NotFoundError, UsageError


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No $BURNER_HOME, $XDG_DATA_HOME or $APPDATA; $HOME is a fresh directory."""
    for name in ("BURNER_HOME", "XDG_DATA_HOME", "APPDATA"):
        monkeypatch.delenv(name, raising=False)
    fake_home = tmp_path / "user"
    fake_home.mkdir()
    monkeypatch.setenv("HOME", str(fake_home))
    monkeypatch.setenv("USERPROFILE", str(fake_home))
    return fake_home


def make_burner(root: Path, name: str, marker: str = "vault.key") -> Path:
    directory = root / name
    directory.mkdir(parents=True)
    (directory / marker).write_bytes(b"")
    return directory


# -- resolve -----------------------------------------------------------------------------------


def test_argument_wins_over_environment(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BURNER_HOME", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Home.resolve(tmp_path / "arg").root == tmp_path / "arg"
    assert Home.resolve(str(tmp_path / "arg")).root == tmp_path / "arg"


def test_argument_expands_the_user(clean_env: Path) -> None:
    assert Home.resolve("~/burners").root == clean_env / "burners"


def test_environment_wins_over_platform(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("BURNER_HOME", str(tmp_path / "env"))
    assert Home.resolve().root == tmp_path / "env"
    monkeypatch.setenv("BURNER_HOME", "~/env")
    assert Home.resolve().root == clean_env / "env"


def test_empty_environment_variable_falls_back_to_platform(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BURNER_HOME", "")
    monkeypatch.setattr(home_module, "sys", SimpleNamespace(platform="linux"))
    assert Home.resolve().root == clean_env / ".local" / "share" / "burnerkit"


def test_platform_default_linux(clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(home_module, "sys", SimpleNamespace(platform="linux"))
    assert Home.resolve().root == clean_env / ".local" / "share" / "burnerkit"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Home.resolve().root == tmp_path / "xdg" / "burnerkit"
    monkeypatch.setenv("XDG_DATA_HOME", "")
    assert Home.resolve().root == clean_env / ".local" / "share" / "burnerkit"


def test_platform_default_macos(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(home_module, "sys", SimpleNamespace(platform="darwin"))
    assert Home.resolve().root == clean_env / "Library" / "Application Support" / "burnerkit"


def test_platform_default_windows(clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(home_module, "sys", SimpleNamespace(platform="win32"))
    assert Home.resolve().root == clean_env / "burnerkit"
    monkeypatch.setenv("APPDATA", str(tmp_path / "roaming"))
    assert Home.resolve().root == tmp_path / "roaming" / "burnerkit"


# -- names, directory ---------------------------------------------------------------------


def test_names_of_a_missing_home_is_empty(tmp_path: Path) -> None:
    assert Home(tmp_path / "nowhere").names() == []


def test_names_lists_only_directories_with_a_vault_or_a_burn_marker(tmp_path: Path) -> None:
    make_burner(tmp_path, "bravo")
    make_burner(tmp_path, "alpha")
    make_burner(tmp_path, "burning", BURNING_MARKER)
    make_burner(tmp_path, "no-vault", "vault.sqlite")  # a database without its header
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file").write_bytes(b"")
    make_burner(tmp_path, "Upper")  # not a valid name
    make_burner(tmp_path, ".hidden")
    assert Home(tmp_path).names() == ["alpha", "bravo", "burning"]


def test_names_ignores_a_marker_that_is_a_file_name_of_the_home(tmp_path: Path) -> None:
    (tmp_path / "vault.key").write_bytes(b"")
    assert Home(tmp_path).names() == []


def test_directory_checks_the_name(tmp_path: Path) -> None:
    assert Home(tmp_path).directory("trip-1") == tmp_path / "trip-1"
    with pytest.raises(UsageError):
        Home(tmp_path).directory("../escape")


# -- pick -----------------------------------------------------------------------------------


def test_pick_with_no_burner(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no burner in"):
        Home(tmp_path).pick(None)
    with pytest.raises(NotFoundError, match="no burner named"):
        Home(tmp_path).pick("alpha")


def test_pick_with_one_burner(tmp_path: Path) -> None:
    make_burner(tmp_path, "alpha")
    assert Home(tmp_path).pick(None) == "alpha"
    assert Home(tmp_path).pick("alpha") == "alpha"
    with pytest.raises(NotFoundError):
        Home(tmp_path).pick("bravo")


def test_pick_with_two_burners(tmp_path: Path) -> None:
    make_burner(tmp_path, "alpha")
    make_burner(tmp_path, "bravo", BURNING_MARKER)
    with pytest.raises(UsageError, match="2 burners") as info:
        Home(tmp_path).pick(None)
    assert type(info.value) is UsageError  # not NotFoundError, its subclass
    assert Home(tmp_path).pick("bravo") == "bravo"


def test_pick_checks_the_name_first(tmp_path: Path) -> None:
    make_burner(tmp_path, "alpha")
    with pytest.raises(UsageError, match="name must be") as info:
        Home(tmp_path).pick("../alpha")
    assert type(info.value) is UsageError


# -- check_name -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "0", "trip-1", "a_b", "a" * 32, "9-_"])
def test_check_name_accepts(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "../x", "A", "Alpha", "a" * 33, "-a", "_a", "a b", "a/b", "a.b", ".", "..", "a\n", "é",
     "a\x00"],
)  # fmt: skip
def test_check_name_refuses(name: str) -> None:
    with pytest.raises(UsageError, match="burner name"):
        check_name(name)


def test_check_name_says_what_it_checks() -> None:
    with pytest.raises(UsageError, match=r"^contact name"):
        check_name("Bob", "contact")
