"""A random run of puts, deletes, rollbacks and reopens matches a dict (hypothesis stateful)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.vault import FAST_TEST_KDF, Vault

KINDS = st.sampled_from(["contact", "msg", "x"])
KEYS = st.sampled_from([b"", b"a", b"b", b"\x00", bytes(255)])
VALUES = st.binary(max_size=700)
OPS = st.lists(st.tuples(st.booleans(), KINDS, KEYS, VALUES), max_size=6)


class _Abort(Exception):
    pass


class VaultMatchesADict(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="vault-prop-"))
        self.dir = self.tmp / "v"
        self.vault = Vault.create(self.dir, "pw", rng=DeterministicRandom(b"prop"), kdf=FAST_TEST_KDF)
        self.model: dict[tuple[str, bytes], bytes] = {}

    @rule(kind=KINDS, key=KEYS, value=VALUES)
    def put(self, kind: str, key: bytes, value: bytes) -> None:
        with self.vault.transaction() as tx:
            tx.put(kind, key, value)
        self.model[kind, key] = value

    @rule(kind=KINDS, key=KEYS)
    def delete(self, kind: str, key: bytes) -> None:
        with self.vault.transaction() as tx:
            assert tx.delete(kind, key) == ((kind, key) in self.model)
        self.model.pop((kind, key), None)

    @rule(ops=OPS, commit=st.booleans())
    def transaction(self, ops: list[tuple[bool, str, bytes, bytes]], commit: bool) -> None:
        staged = dict(self.model)
        try:
            with self.vault.transaction() as tx:
                for is_put, kind, key, value in ops:
                    if is_put:
                        tx.put(kind, key, value)
                        staged[kind, key] = value
                    else:
                        tx.delete(kind, key)
                        staged.pop((kind, key), None)
                    assert tx.get(kind, key) == staged.get((kind, key))
                if not commit:
                    raise _Abort
        except _Abort:
            return
        self.model = staged

    @rule()
    def reopen(self) -> None:
        self.vault.close()
        self.vault = Vault.open(self.dir, "pw", rng=DeterministicRandom(b"reopened"))

    @invariant()
    def matches_the_model(self) -> None:
        for kind in ("contact", "msg", "x"):
            expected = {k: v for (kd, k), v in self.model.items() if kd == kind}
            items = self.vault.items(kind)
            assert len(items) == len(expected)
            assert dict(items) == expected

    def teardown(self) -> None:
        self.vault.close()
        shutil.rmtree(self.tmp)


VaultMatchesADict.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
test_vault_matches_a_dict = VaultMatchesADict.TestCase
