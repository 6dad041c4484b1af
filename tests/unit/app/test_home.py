"""Where burners live (app/home.py): resolution order, directories by id, burn markers, names."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from burnerkit.app import home as home_module
from burnerkit.app.home import (
    LEGACY_BURNING_MARKER,
    Home,
    check_name,
    clear_burning,
    is_burning,
    mark_burning,
)
from burnerkit.crypto.rng import SystemRandom
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


# -- slots, count, migrate -------------------------------------------------------------------

ID = "a" * 26  # the shape of a directory id: 26 of a-z 2-7


def test_slots_of_a_missing_home_is_empty(tmp_path: Path) -> None:
    assert Home(tmp_path / "nowhere").slots() == []
    assert Home(tmp_path / "nowhere").count() == 0


def test_slots_are_directories_with_a_vault_or_a_burn_marker(tmp_path: Path) -> None:
    one = make_burner(tmp_path, ID)
    legacy = make_burner(tmp_path, "alpha")  # the previous version's: named after the burner
    burning = make_burner(tmp_path, "b" * 26, "c" * 26)  # a burn marker: a file named by an id
    old_burning = make_burner(tmp_path, "bravo", LEGACY_BURNING_MARKER)
    make_burner(tmp_path, "no-vault", "vault.sqlite")  # a database without its header
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file").write_bytes(b"")
    make_burner(tmp_path, "Upper")  # not a name this code ever made
    make_burner(tmp_path, ".hidden")
    assert Home(tmp_path).slots() == sorted([one, legacy, burning, old_burning])
    assert Home(tmp_path).count() == 4


def test_slots_ignore_a_vault_header_that_is_a_file_of_the_home(tmp_path: Path) -> None:
    (tmp_path / "vault.key").write_bytes(b"")
    assert Home(tmp_path).slots() == []


def test_new_directory_is_a_fresh_random_id(tmp_path: Path) -> None:
    rng = SystemRandom()
    first, second = Home(tmp_path).new_directory(rng), Home(tmp_path).new_directory(rng)
    assert first.parent == second.parent == tmp_path
    assert first != second
    for path in (first, second):
        assert re.fullmatch(r"[a-z2-7]{26}", path.name)
        assert not path.exists()


def test_migrate_renames_directories_named_after_burners_and_leaves_ids(tmp_path: Path) -> None:
    one = make_burner(tmp_path, ID)
    make_burner(tmp_path, "alpha")
    renamed = Home(tmp_path).migrate(SystemRandom())
    assert list(renamed.values()) == ["alpha"]
    (moved,) = renamed
    assert (moved / "vault.key").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([ID, moved.name])
    assert one.is_dir()
    assert Home(tmp_path).migrate(SystemRandom()) == {}


def test_burn_marker_is_an_id_and_is_cleared(tmp_path: Path) -> None:
    directory = make_burner(tmp_path, ID)
    assert not is_burning(directory)
    mark_burning(directory, SystemRandom())
    assert is_burning(directory)
    (marker,) = (path for path in directory.iterdir() if path.name != "vault.key")
    assert re.fullmatch(r"[a-z2-7]{26}", marker.name)
    mark_burning(directory, SystemRandom())  # marked already: no second marker
    assert len(list(directory.iterdir())) == 2
    clear_burning(directory)
    assert not is_burning(directory)
    assert [path.name for path in directory.iterdir()] == ["vault.key"]


def test_trial_order_puts_first_first_and_the_rest_in_every_order(tmp_path: Path) -> None:
    slots = [tmp_path / name for name in "abcde"]
    rng = SystemRandom()
    seen = {tuple(Home.trial_order(slots, rng)) for _ in range(200)}
    assert all(sorted(order) == slots for order in seen)
    assert len(seen) > 1  # 120 orders: 200 draws giving one is a broken shuffle
    assert Home.trial_order(slots, rng, first=[slots[3]])[0] == slots[3]


# -- check_choice ---------------------------------------------------------------------------


def test_check_choice_with_no_burner(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no burner in"):
        Home(tmp_path).check_choice(None)
    with pytest.raises(NotFoundError, match="no burner in"):
        Home(tmp_path).check_choice("alpha")


def test_check_choice_with_one_burner(tmp_path: Path) -> None:
    make_burner(tmp_path, ID)
    Home(tmp_path).check_choice(None)
    Home(tmp_path).check_choice("anyone")  # which name it holds only the passphrase says


def test_check_choice_with_two_burners(tmp_path: Path) -> None:
    make_burner(tmp_path, ID)
    make_burner(tmp_path, "b" * 26, "c" * 26)
    with pytest.raises(UsageError, match="2 burners") as info:
        Home(tmp_path).check_choice(None)
    assert type(info.value) is UsageError  # not NotFoundError, its subclass
    Home(tmp_path).check_choice("bravo")


def test_check_choice_checks_the_name_first(tmp_path: Path) -> None:
    make_burner(tmp_path, ID)
    with pytest.raises(UsageError, match="name must be") as info:
        Home(tmp_path).check_choice("../alpha")
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
