"""The duress passphrase, in process with the real vault on disk (docs/protocol.md §17.11).

The attacks: a coercer who makes the owner unlock (the duress passphrase must destroy the
real key before anything else), an examiner who compares images of the home taken before
and after the unlock (the files touched and nothing on disk may tell a duress unlock from a
normal one), and one who times it. The CLI side is tests/e2e/test_duress.py.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import pytest

from burnerkit.app import duress
from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.errors import UsageError, VaultLockedError
from burnerkit.vault import Vault

PASS = "correct horse battery"
DURESS = "open sesame please"
NAME = "alice"
RELAY = "ws://127.0.0.1:7000"


def armed_home(root: Path) -> Home:
    """A home with one burner, duress armed, and a record or two of real life in it."""
    home = Home(root)
    with Messenger.create(home, NAME, PASS, relay_url=RELAY, kdf=FAST_TEST_KDF) as messenger:
        messenger.arm_duress(DURESS)
    return home


def real_and_decoy(home: Home) -> tuple[Path, Path]:
    real = decoy = None
    for slot in home.slots():
        try:
            Vault.open(slot, PASS).close()
            real = slot
        except VaultLockedError:
            decoy = slot
    assert real is not None
    assert decoy is not None
    return real, decoy


Snapshot = dict[str, tuple[int, int, str]]


def snapshot(root: Path) -> Snapshot:
    """Every file under ``root``: its mtime, size and content hash."""
    out: Snapshot = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            out[str(path.relative_to(root))] = (
                st.st_mtime_ns,
                st.st_size,
                hashlib.sha256(path.read_bytes()).hexdigest(),
            )
    return out


def touched(before: Snapshot, after: Snapshot, roles: dict[str, str]) -> set[tuple[str, str, str]]:
    """What changed, each directory named by its role: (role, file, how)."""
    out = set()
    for path in before.keys() | after.keys():
        directory, _, name = path.partition("/")
        if path not in after:
            how = "removed"
        elif path not in before:
            how = "created"
        elif before[path][1] != after[path][1]:
            how = "resized"
        elif before[path] != after[path]:
            how = "rewritten"
        else:
            continue
        out.add((roles[directory], name, how))
    return out


def test_duress_unlock_destroys_the_real_vault_key_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = armed_home(tmp_path / "home")
    real, decoy = real_and_decoy(home)
    calls: list[str] = []
    erase, transaction = Vault.erase_key, Vault.transaction

    def erase_key(directory: Path) -> None:
        calls.append(f"erase {Path(directory).name}")
        erase(directory)

    def tx(self: Vault):  # type: ignore[no-untyped-def]
        calls.append(f"write {self._directory.name}")
        return transaction(self)

    monkeypatch.setattr(Vault, "erase_key", staticmethod(erase_key))
    monkeypatch.setattr(Vault, "transaction", tx)
    with Messenger.open(home, NAME, DURESS) as messenger:
        assert messenger.name == NAME
        assert messenger.contacts() == []
        assert not messenger.duress_armed
    assert calls[0] == f"erase {real.name}"
    assert all(call == f"write {decoy.name}" for call in calls[1:])
    with pytest.raises(VaultLockedError):
        Messenger.open(home, NAME, PASS)
    assert home.count() == 2  # nothing removed: the real directory stays, opening nothing


def test_copy_taken_after_a_duress_unlock_opens_nothing_with_the_real_passphrase(tmp_path: Path) -> None:
    home = armed_home(tmp_path / "home")
    Messenger.open(home, NAME, DURESS).close()
    image = tmp_path / "image"
    shutil.copytree(home.root, image)
    for slot in Home(image).slots():
        with pytest.raises(VaultLockedError):
            Vault.open(slot, PASS)
    with pytest.raises(VaultLockedError):
        Messenger.open(Home(image), NAME, PASS)


@pytest.mark.parametrize("writes", [False, True], ids=["read-only", "writing"])
def test_duress_unlock_and_normal_unlock_touch_the_same_set_of_files(tmp_path: Path, writes: bool) -> None:
    home = armed_home(tmp_path / "home")
    real, decoy = real_and_decoy(home)
    time.sleep(0.01)  # mtimes of the unlocks below differ from the arming's on coarse clocks
    outcomes = {}
    for passphrase, opened in ((PASS, real), (DURESS, decoy)):
        copy = tmp_path / passphrase.replace(" ", "-")
        shutil.copytree(home.root, copy)
        before = snapshot(copy)
        with Messenger.open(Home(copy), NAME, passphrase) as messenger:
            if writes:
                with messenger._vault.transaction() as tx:  # any command's write: the clock mark rides on it
                    tx.put("profile", b"burner", messenger._vault.get("profile", b"burner") or b"")
        roles = {opened.name: "opened", (decoy if opened == real else real).name: "other"}
        outcomes[passphrase] = touched(before, snapshot(copy), roles)
    assert outcomes[PASS] == outcomes[DURESS]
    assert ("other", "vault.key", "rewritten") in outcomes[PASS]
    assert ("opened", "vault.key", "rewritten") in outcomes[PASS]
    assert not any(
        how in ("created", "removed", "resized") for _, name, how in outcomes[PASS] if name == "vault.key"
    )


def test_duress_unlock_takes_time_from_the_same_distribution_as_a_normal_unlock(tmp_path: Path) -> None:
    """Interleaved runs on fresh copies, compared by rank (Mann-Whitney), never against a limit.

    Both unlocks run the same derivations in the same trial order; what differs is which
    small writes follow. Completely separated samples of 9 (p = 4e-5) fail; p >= 0.001 passes.
    """
    home = armed_home(tmp_path / "home")
    times: dict[str, list[float]] = {PASS: [], DURESS: []}
    for run in range(9):
        for passphrase in (PASS, DURESS) if run % 2 else (DURESS, PASS):
            copy = tmp_path / f"{run}-{passphrase.replace(' ', '-')}"
            shutil.copytree(home.root, copy)
            start = time.perf_counter()
            Messenger.open(Home(copy), NAME, passphrase).close()
            times[passphrase].append(time.perf_counter() - start)
    normal, coerced = sorted(times[PASS]), sorted(times[DURESS])
    assert mann_whitney_p(normal, coerced) >= 0.001, (normal, coerced)


def mann_whitney_p(a: list[float], b: list[float]) -> float:
    """The exact two-sided p-value of Mann-Whitney's U test (no ties: times are floats).

    The count of orderings of the pooled sample with each U comes from the recurrence
    N(u; m, n) = N(u - n; m - 1, n) + N(u; m, n - 1).
    """
    m, n = len(a), len(b)
    u = sum(1 for x in a for y in b if x > y)
    counts: dict[tuple[int, int], list[int]] = {}

    def table(i: int, j: int) -> list[int]:
        if (i, j) not in counts:
            if i == 0 or j == 0:
                counts[i, j] = [1]
            else:
                left, right = table(i - 1, j), table(i, j - 1)
                out = [0] * (i * j + 1)
                for k, c in enumerate(left):
                    out[k + j] += c
                for k, c in enumerate(right):
                    out[k] += c
                counts[i, j] = out
        return counts[i, j]

    dist = table(m, n)
    low = min(u, m * n - u)
    return min(1.0, 2 * sum(dist[: low + 1]) / sum(dist))


def test_nothing_on_disk_names_the_duress_event(tmp_path: Path) -> None:
    home = armed_home(tmp_path / "home")
    real, decoy = real_and_decoy(home)
    guard = duress.Guard(real.name).to_bytes()
    Messenger.open(home, NAME, DURESS).close()
    words = [b"duress", b"decoy", b"guard", b"coerc", real.name.encode(), decoy.name.encode(), guard]
    for path in home.root.rglob("*"):
        assert all(word not in path.name.encode() for word in words[:4]), path
        if path.is_file():
            data = path.read_bytes()
            for word in words:
                assert word.lower() not in data.lower(), (path, word)
    assert sorted(p.name for p in decoy.iterdir()) == sorted(p.name for p in real.iterdir())


def test_real_burner_unlocked_again_and_again_keeps_its_decoy_armed(tmp_path: Path) -> None:
    """The cover write hits only the decoy's spare slot: the decoy still opens, and still fires."""
    home = armed_home(tmp_path / "home")
    for _ in range(3):
        with Messenger.open(home, NAME, PASS) as messenger:
            assert messenger.duress_armed
    with Messenger.open(home, NAME, DURESS) as messenger:
        assert messenger.contacts() == []
    with pytest.raises(VaultLockedError):
        Messenger.open(home, NAME, PASS)


def test_burner_list_under_the_duress_passphrase_fires_too(tmp_path: Path) -> None:
    home = armed_home(tmp_path / "home")
    assert [info.name for info in Messenger.survey(home, DURESS)] == [NAME]
    assert Messenger.survey(home, PASS) == []


def test_duress_passphrase_equal_to_the_burners_own_is_refused(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    with Messenger.create(home, NAME, PASS, relay_url=RELAY, kdf=FAST_TEST_KDF) as messenger:
        with pytest.raises(UsageError, match="must differ"):
            messenger.arm_duress(PASS)
        assert not messenger.duress_armed
    assert home.count() == 1


def test_rearming_replaces_the_decoy_and_disarming_shreds_it(tmp_path: Path) -> None:
    home = armed_home(tmp_path / "home")
    with Messenger.open(home, NAME, PASS) as messenger:
        messenger.arm_duress("another duress one")
    assert home.count() == 2
    with pytest.raises(VaultLockedError):
        Messenger.open(home, NAME, DURESS)  # the first decoy is gone
    with Messenger.open(home, NAME, PASS) as messenger:
        assert messenger.disarm_duress()
        assert not messenger.disarm_duress()
    assert home.count() == 1
    Messenger.open(home, NAME, PASS).close()


def test_burn_takes_the_decoy_along(tmp_path: Path) -> None:
    import asyncio

    home = armed_home(tmp_path / "home")
    with Messenger.open(home, NAME, PASS) as messenger:
        asyncio.run(messenger.burn())
    assert home.count() == 0
    assert not home.root.exists() or not any(path.is_file() for path in home.root.rglob("*"))


def test_decoy_and_guard_records_round_trip_and_refuse_garbage() -> None:
    decoy = duress.Decoy("a" * 26, 1)
    assert duress.Decoy.from_bytes(decoy.to_bytes()) == decoy
    guard = duress.Guard("b" * 26)
    assert duress.Guard.from_bytes(guard.to_bytes()) == guard
    for bad in (b"", b"\x01" + b"A" * 26 + b"\x00", b"\x01" + b"a" * 26 + b"\x02", b"\x02" + b"a" * 26):
        with pytest.raises(Exception, match="does not parse"):
            duress.Decoy.from_bytes(bad)
