"""The header-encrypted, PQ-hybrid Double Ratchet on its own (docs/protocol.md §5).

These tests drive two :class:`DoubleRatchet` objects directly, with a made-up shared
secret and header keys, so they exercise the ratchet without the handshake or the
envelope layer. Attack-named tests that go through whole sessions live in
``test_attacks.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from burnerkit.crypto.kdf import chain_step
from burnerkit.crypto.keys import KemPrivateKey, X25519PrivateKey
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.errors import (
    DecryptionError,
    DuplicateMessageError,
    ForkDetectedError,
    LocalProtocolError,
    TooManySkippedMessagesError,
)
from burnerkit.protocol.ratchet import (
    HEADER_CIPHERTEXT_SIZE,
    MAX_SKIP,
    MAX_SKIPPED_KEYS,
    RATCHET_OVERHEAD,
    RETIRED_CHAINS,
    SEEN_WINDOW,
    SKIPPED_KEY_MAX_AGE,
    DoubleRatchet,
)

AD = b"associated data"
T = 1_800_000_000


class RatchetPair:
    """Alice sends first (``init_sender``), Bob receives first (``init_receiver``)."""

    def __init__(self, seed: bytes = b"ratchet tests") -> None:
        self.rng = DeterministicRandom(seed)
        bob_dh, bob_kem = X25519PrivateKey.generate(self.rng), KemPrivateKey.generate(self.rng)
        sk, hk_a, nhk_b = (self.rng.random_bytes(32) for _ in range(3))
        self.alice = DoubleRatchet.init_sender(
            shared_secret=sk,
            header_key=hk_a,
            next_header_key_recv=nhk_b,
            their_dh=bob_dh.public_key,
            their_kem=bob_kem.public_key,
            rng=self.rng,
        )
        self.bob = DoubleRatchet.init_receiver(
            shared_secret=sk,
            next_header_key_send=nhk_b,
            next_header_key_recv=hk_a,
            our_dh=bob_dh,
            our_kem=bob_kem,
            rng=self.rng,
        )

    def copy(self, ratchet: DoubleRatchet) -> DoubleRatchet:
        return DoubleRatchet.from_bytes(ratchet.to_bytes(), rng=self.rng)


def open_(ratchet: DoubleRatchet, message: bytes, *, now: int = T, ad: bytes = AD) -> bytes:
    return ratchet.decrypt(message, ad, now=now, parse=bytes)


def fast_forward(ratchet: DoubleRatchet, count: int) -> None:
    """Use up ``count`` message numbers, as if those messages were sent and lost."""
    for _ in range(count):
        ratchet.encrypt(b"", b"lost")


@pytest.fixture
def pair():
    return RatchetPair()


# --------------------------------------------------------------------- normal operation


def test_first_message_and_reply(pair):
    assert pair.alice.can_send
    assert not pair.bob.can_send
    assert open_(pair.bob, pair.alice.encrypt(b"hi bob", AD)) == b"hi bob"
    assert pair.bob.can_send
    assert open_(pair.alice, pair.bob.encrypt(b"hi alice", AD)) == b"hi alice"


def test_receiver_cannot_send_before_it_has_received(pair):
    before = pair.bob.to_bytes()
    with pytest.raises(LocalProtocolError, match="peer has to speak first"):
        pair.bob.encrypt(b"too early", AD)
    assert pair.bob.to_bytes() == before


def test_message_size_is_plaintext_plus_overhead(pair):
    for size in (0, 1, 1000):
        assert len(pair.alice.encrypt(bytes(size), AD)) == RATCHET_OVERHEAD + size


def test_long_ping_pong(pair):
    for i in range(20):
        sender, receiver = (pair.alice, pair.bob) if i % 2 == 0 else (pair.bob, pair.alice)
        for j in range(i % 3 + 1):
            text = f"{i}.{j}".encode()
            assert open_(receiver, sender.encrypt(text, AD)) == text


def test_header_is_encrypted(pair):
    message = pair.alice.encrypt(b"", AD)
    state = pair.alice
    assert state._dh_self is not None
    assert state._kem_self is not None
    assert state._dh_self.public_key.raw not in message
    assert state._kem_self.public_key.raw[:64] not in message
    # Two messages of one chain share no header bytes an observer could link.
    second = pair.alice.encrypt(b"", AD)
    assert message[:HEADER_CIPHERTEXT_SIZE] != second[:HEADER_CIPHERTEXT_SIZE]


def test_out_of_order_within_a_chain(pair):
    messages = [pair.alice.encrypt(bytes([i]), AD) for i in range(4)]
    assert open_(pair.bob, messages[3]) == b"\x03"
    assert pair.bob.skipped_key_count == 3
    assert open_(pair.bob, messages[1]) == b"\x01"
    assert open_(pair.bob, messages[0]) == b"\x00"
    assert open_(pair.bob, messages[2]) == b"\x02"
    assert pair.bob.skipped_key_count == 0


def test_late_message_of_an_old_chain_after_a_dh_step(pair):
    a0, a1 = pair.alice.encrypt(b"a0", AD), pair.alice.encrypt(b"a1", AD)
    assert open_(pair.bob, a0) == b"a0"
    assert open_(pair.alice, pair.bob.encrypt(b"b0", AD)) == b"b0"
    a2 = pair.alice.encrypt(b"a2", AD)  # a new chain; its header says pn = 2
    assert open_(pair.bob, a2) == b"a2"
    assert pair.bob.skipped_key_count == 1
    assert open_(pair.bob, a1) == b"a1"
    assert pair.bob.skipped_key_count == 0


def test_wrong_associated_data_is_rejected_without_state_change(pair):
    message = pair.alice.encrypt(b"x", AD)
    before = pair.bob.to_bytes()
    with pytest.raises(DecryptionError):
        open_(pair.bob, message, ad=b"other")
    assert pair.bob.to_bytes() == before
    assert open_(pair.bob, message) == b"x"


def test_parse_failure_leaves_state_unchanged(pair):
    message = pair.alice.encrypt(b"x", AD)
    before = pair.bob.to_bytes()

    def refuse(plaintext: bytes) -> bytes:
        assert plaintext == b"x"
        raise DecryptionError

    with pytest.raises(DecryptionError):
        pair.bob.decrypt(message, AD, now=T, parse=refuse)
    assert pair.bob.to_bytes() == before
    assert open_(pair.bob, message) == b"x"


@pytest.mark.parametrize("size", [0, 1, RATCHET_OVERHEAD - 1])
def test_short_message_is_rejected(pair, size):
    before = pair.bob.to_bytes()
    with pytest.raises(DecryptionError):
        open_(pair.bob, bytes(size))
    assert pair.bob.to_bytes() == before


def test_replay_and_fork(pair):
    clone = pair.copy(pair.alice)
    real, fake = pair.alice.encrypt(b"real", AD), clone.encrypt(b"fake", AD)
    assert open_(pair.bob, real) == b"real"
    before = pair.bob.to_bytes()
    with pytest.raises(DuplicateMessageError):
        open_(pair.bob, real)
    with pytest.raises(ForkDetectedError):
        open_(pair.bob, fake)
    assert pair.bob.to_bytes() == before


def test_seen_window_is_bounded(pair):
    for _ in range(SEEN_WINDOW + 5):
        open_(pair.bob, pair.alice.encrypt(b"", AD))
    assert len(pair.bob._seen) == SEEN_WINDOW


# ------------------------------------------------------------------- retired chains


def refused(ratchet: DoubleRatchet, message: bytes, error: type[Exception]) -> str:
    """Decrypting ``message`` raises exactly ``error`` and leaves the state byte-identical."""
    before = ratchet.to_bytes()
    with pytest.raises(error) as info:
        open_(ratchet, message)
    assert type(info.value) is error
    assert ratchet.to_bytes() == before
    return str(info.value)


def round_trip(pair: RatchetPair, rounds: int = 1) -> None:
    """Bob to Alice, Alice to Bob: each round opens a new chain each way, so Bob closes
    Alice's chain of before (Bob must have received something first)."""
    for _ in range(rounds):
        assert open_(pair.alice, pair.bob.encrypt(b"pong", AD)) == b"pong"
        assert open_(pair.bob, pair.alice.encrypt(b"ping", AD)) == b"ping"


DUPLICATE = "message was already received or its key is gone"
BEYOND = "a message arrived beyond the end of a closed chain"
SAME_COUNTER = "a second, different message arrived for the same ratchet key"
OTHER_KEY = "a message under a known header key carries another ratchet key"


def test_closed_chain_is_retired_with_its_final_length(pair):
    a = [pair.alice.encrypt(bytes([i]), AD) for i in range(2)]
    for message in a:
        open_(pair.bob, message)
    hk, dh = pair.bob._hkr, pair.bob._dhr
    assert hk is not None
    assert dh is not None
    round_trip(pair)
    assert pair.bob._skipped_chains == {}  # nothing left to read in chain 1 ...
    retired = pair.bob._retired[hk]  # ... but Bob remembers it, without any key to read it
    assert (retired.dh, retired.length) == (dh.raw, 2)
    for message in a:
        assert refused(pair.bob, message, DuplicateMessageError) == DUPLICATE


def test_clone_writing_beyond_a_retired_chain_is_a_fork(pair):
    open_(pair.bob, pair.alice.encrypt(b"a0", AD))
    clone = pair.copy(pair.alice)
    round_trip(pair, 3)
    assert pair.bob._skipped_chains == {}  # only the retired record holds its header key
    fake = clone.encrypt(b"fake", AD)  # n = 1 on chain 1, which Bob closed at length 1
    assert refused(pair.bob, fake, ForkDetectedError) == BEYOND
    round_trip(pair)


def test_clone_rewriting_a_counter_of_a_retired_chain_is_a_fork(pair):
    clone = pair.copy(pair.alice)
    open_(pair.bob, pair.alice.encrypt(b"real", AD))
    round_trip(pair, 3)
    fake = clone.encrypt(b"fake", AD)  # n = 0 again, another header tag
    assert refused(pair.bob, fake, ForkDetectedError) == SAME_COUNTER
    round_trip(pair)


def test_clone_with_its_own_ratchet_key_on_a_retired_chain_is_a_fork(pair):
    open_(pair.bob, pair.alice.encrypt(b"a0", AD))
    reply = pair.bob.encrypt(b"b0", AD)
    clone = pair.copy(pair.alice)
    # Both copies take Bob's new chain and step with their own fresh ratchet keys,
    # under the one next header key both hold.
    assert open_(pair.alice, reply) == open_(clone, reply) == b"b0"
    assert open_(pair.bob, pair.alice.encrypt(b"real", AD)) == b"real"
    round_trip(pair, 2)  # Bob closes the original's chain
    assert pair.bob._skipped_chains == {}  # only the retired record holds its header key
    fake = clone.encrypt(b"fake", AD)
    assert refused(pair.bob, fake, ForkDetectedError) == OTHER_KEY
    round_trip(pair)


def test_clone_beyond_a_retired_chain_with_skipped_keys_left_is_a_fork(pair):
    # The chain still has a skipped key, so its header opens in the skipped-chain trial;
    # the retired length still bounds it.
    a = [pair.alice.encrypt(bytes([i]), AD) for i in range(2)]
    clone = pair.copy(pair.alice)
    open_(pair.bob, a[1])  # a[0] stays a skipped key of chain 1
    round_trip(pair)
    assert pair.bob.skipped_key_count == 1
    fake = clone.encrypt(b"fake", AD)  # n = 2: at the closed chain's length
    assert refused(pair.bob, fake, ForkDetectedError) == BEYOND
    assert open_(pair.bob, a[0]) == b"\x00"


def test_retired_chains_survive_serialisation(pair):
    open_(pair.bob, pair.alice.encrypt(b"a0", AD))
    clone = pair.copy(pair.alice)
    round_trip(pair, 2)
    bob = pair.copy(pair.bob)
    assert bob.to_bytes() == pair.bob.to_bytes()
    assert refused(bob, clone.encrypt(b"fake", AD), ForkDetectedError) == BEYOND


def test_retired_chains_are_bounded_oldest_first(pair):
    closed = []
    for _ in range(RETIRED_CHAINS + 3):
        open_(pair.bob, pair.alice.encrypt(b"", AD))
        closed.append(pair.bob._hkr)
        open_(pair.alice, pair.bob.encrypt(b"", AD))
    open_(pair.bob, pair.alice.encrypt(b"", AD))  # closes the last of them
    assert list(pair.bob._retired) == closed[-RETIRED_CHAINS:]


def test_sending_chain_exhausted(pair):
    pair.alice._ns = 0xFFFFFFFF
    with pytest.raises(LocalProtocolError, match="exhausted"):
        pair.alice.encrypt(b"", AD)


# -------------------------------------------------------------------------- skip limits


def test_limits():
    assert MAX_SKIP == 1000
    assert MAX_SKIPPED_KEYS == 2000
    assert SKIPPED_KEY_MAX_AGE == 7 * 24 * 3600


def test_max_skip_on_the_first_message_of_a_chain_is_allowed(pair):
    fast_forward(pair.alice, MAX_SKIP)
    assert open_(pair.bob, pair.alice.encrypt(b"edge", AD)) == b"edge"
    assert pair.bob.skipped_key_count == MAX_SKIP


def test_one_beyond_max_skip_on_the_first_message_of_a_chain_is_refused(pair):
    fast_forward(pair.alice, MAX_SKIP + 1)
    before = pair.bob.to_bytes()
    with pytest.raises(TooManySkippedMessagesError):
        open_(pair.bob, pair.alice.encrypt(b"over", AD))
    assert pair.bob.to_bytes() == before


def test_max_skip_within_a_chain(pair):
    open_(pair.bob, pair.alice.encrypt(b"", AD))  # nr = 1
    fast_forward(pair.alice, MAX_SKIP)
    edge = pair.alice.encrypt(b"edge", AD)  # n = 1001: 1000 ahead
    over_state = pair.copy(pair.alice)
    fast_forward(over_state, 1)
    over = over_state.encrypt(b"over", AD)  # n = 1002
    before = pair.bob.to_bytes()
    with pytest.raises(TooManySkippedMessagesError):
        open_(pair.bob, over)
    assert pair.bob.to_bytes() == before
    assert open_(pair.bob, edge) == b"edge"


def test_skipped_keys_are_kept_up_to_max_age_and_deleted_after(pair):
    m0, m1 = pair.alice.encrypt(b"m0", AD), pair.alice.encrypt(b"m1", AD)
    k0, k1 = pair.alice.encrypt(b"k0", AD), pair.alice.encrypt(b"k1", AD)
    p = pair.alice.encrypt(b"p", AD)
    open_(pair.bob, m1, now=T)  # m0's key stored at T
    open_(pair.bob, k1, now=T + 10)  # k0's key stored at T + 10
    assert pair.bob.skipped_key_count == 2
    # A commit exactly SKIPPED_KEY_MAX_AGE later keeps m0's key ...
    open_(pair.bob, p, now=T + SKIPPED_KEY_MAX_AGE)
    assert pair.bob.skipped_key_count == 2
    # ... one second more and the next commit deletes it (and only it).
    q = pair.alice.encrypt(b"q", AD)
    open_(pair.bob, q, now=T + SKIPPED_KEY_MAX_AGE + 1)
    assert pair.bob.skipped_key_count == 1
    # Once deleted, the message is undecryptable. Like libsignal, a counter below
    # the chain's position with no key left reads as a duplicate.
    before = pair.bob.to_bytes()
    with pytest.raises(DuplicateMessageError):
        open_(pair.bob, m0, now=T + SKIPPED_KEY_MAX_AGE + 2)
    assert pair.bob.to_bytes() == before
    assert open_(pair.bob, k0, now=T + SKIPPED_KEY_MAX_AGE + 2) == b"k0"


def test_skipped_key_older_than_max_age_is_never_used(pair):
    # No other message in between, so nothing has purged the key yet: it must still
    # not be used once it is past its age.
    m0, m1 = pair.alice.encrypt(b"m0", AD), pair.alice.encrypt(b"m1", AD)
    open_(pair.bob, m1, now=T)
    before = pair.bob.to_bytes()
    with pytest.raises(DuplicateMessageError, match="its key is gone"):
        open_(pair.bob, m0, now=T + SKIPPED_KEY_MAX_AGE + 1)
    assert pair.bob.to_bytes() == before
    # At exactly its age it is still good.
    assert open_(pair.bob, m0, now=T + SKIPPED_KEY_MAX_AGE) == b"m0"


def test_purge_expired(pair):
    messages = [pair.alice.encrypt(bytes([i]), AD) for i in range(4)]
    open_(pair.bob, messages[1], now=T)  # key 0 stored at T
    open_(pair.bob, messages[3], now=T + 100)  # key 2 stored at T + 100
    assert pair.bob.purge_expired(T + SKIPPED_KEY_MAX_AGE) == 0
    assert pair.bob.skipped_key_count == 2
    key0 = pair.bob._skipped[next(iter(pair.bob._skipped))][0]
    assert key0 in pair.bob.to_bytes()
    assert pair.bob.purge_expired(T + SKIPPED_KEY_MAX_AGE + 1) == 1
    assert key0 not in pair.bob.to_bytes()
    assert pair.bob.skipped_key_count == 1
    assert pair.bob.purge_expired(T + SKIPPED_KEY_MAX_AGE + 1000) == 1
    assert pair.bob.skipped_key_count == 0
    assert pair.bob._skipped_chains == {}
    assert pair.bob.purge_expired(T + 10 * SKIPPED_KEY_MAX_AGE) == 0
    for message in (messages[0], messages[2]):
        with pytest.raises(DuplicateMessageError):
            open_(pair.bob, message, now=T + SKIPPED_KEY_MAX_AGE + 1000)


# ------------------------------------------------------------------------ serialisation


def _states(pair: RatchetPair) -> Iterator[tuple[str, DoubleRatchet]]:
    """Ratchet states at interesting moments, as (name, ratchet) pairs."""
    yield "fresh sender", pair.alice
    yield "fresh receiver", pair.bob
    messages = [pair.alice.encrypt(bytes([i]), AD) for i in range(5)]
    open_(pair.bob, messages[4])
    open_(pair.bob, messages[1])
    yield "receiver with skipped keys", pair.bob
    open_(pair.alice, pair.bob.encrypt(b"reply", AD))
    yield "sender after a dh step", pair.alice
    open_(pair.bob, pair.alice.encrypt(b"new chain", AD))
    yield "receiver with an old skipped chain", pair.bob


def test_to_bytes_from_bytes_is_byte_identical(pair):
    for name, state in _states(pair):
        data = state.to_bytes()
        assert DoubleRatchet.from_bytes(data, rng=pair.rng).to_bytes() == data, name


def test_restored_state_keeps_working(pair):
    messages = [pair.alice.encrypt(bytes([i]), AD) for i in range(3)]
    open_(pair.bob, messages[2])
    bob = pair.copy(pair.bob)
    assert open_(bob, messages[0]) == b"\x00"
    assert open_(pair.alice, bob.encrypt(b"from restored", AD)) == b"from restored"


def test_state_holds_its_skipped_keys(pair):
    messages = [pair.alice.encrypt(bytes([i]), AD) for i in range(3)]
    open_(pair.bob, messages[2])
    restored = pair.copy(pair.bob)
    assert restored.skipped_key_count == 2
    assert repr(restored) == repr(pair.bob)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: b"",
        lambda d: d[:-1],
        lambda d: d + b"\x00",
        lambda d: b"\x00" + d[1:],
        lambda d: b"\x03" + d[1:],
        lambda d: b"\xff" + d[1:],
        # A version 1 state has no retired section: the v2 body's count is left over.
        lambda d: b"\x01" + d[1:],
    ],
    ids=["empty", "truncated", "trailing", "version-0", "version-3", "version-255", "v1-with-v2-body"],
)
def test_from_bytes_refuses_bad_state(pair, mangle):
    open_(pair.bob, pair.alice.encrypt(b"", AD))
    data = pair.bob.to_bytes()
    assert data[0] == 2
    with pytest.raises(ValueError, match="not a valid ratchet state"):
        DoubleRatchet.from_bytes(mangle(data), rng=pair.rng)


def _as_version_1(data: bytes) -> bytes:
    """The version 1 form of a v2 state with no retired chains: no retired section."""
    assert data[0] == 2
    assert data[-4:] == bytes(4)  # u32 count of retired chains: 0
    return b"\x01" + data[1:-4]


def test_version_1_state_loads_and_writes_back_as_version_2(pair):
    for name, state in _states(pair):
        data = state.to_bytes()
        if state._retired:
            continue  # a v1 state cannot hold retired chains
        loaded = DoubleRatchet.from_bytes(_as_version_1(data), rng=pair.rng)
        assert loaded._retired == {}, name
        assert loaded.to_bytes() == data, name
        assert DoubleRatchet.from_bytes(loaded.to_bytes(), rng=pair.rng).to_bytes() == data, name
    # "receiver with skipped keys" was the last state without retired chains; rebuild
    # it as v1 and check the loaded copy carries the conversation on both ways.
    pair = RatchetPair()
    messages = [pair.alice.encrypt(bytes([i]), AD) for i in range(3)]
    open_(pair.bob, messages[2])
    bob = DoubleRatchet.from_bytes(_as_version_1(pair.bob.to_bytes()), rng=pair.rng)
    hk = bob._hkr
    assert hk is not None
    assert open_(bob, messages[0]) == b"\x00"
    assert open_(pair.alice, bob.encrypt(b"reply", AD)) == b"reply"
    assert open_(bob, pair.alice.encrypt(b"new chain", AD)) == b"new chain"
    # Its first DH step retires Alice's chain 1 as any v2 state would.
    assert list(bob._retired) == [hk]
    assert bob._retired[hk].length == 3
    with pytest.raises(DuplicateMessageError):
        open_(bob, messages[2])


def _retired_section(data: bytes, count: int) -> tuple[bytes, bytes]:
    """Split a v2 state whose retired section holds ``count`` chains: (head, section)."""
    size = 4 + 68 * count
    head, section = data[:-size], data[-size:]
    assert int.from_bytes(section[:4], "big") == count
    return head, section


def test_retired_section_layout(pair):
    # Bob closes Alice's chain 1 (3 messages, 2 of them read) when her chain 2 arrives.
    messages = [pair.alice.encrypt(bytes([i]), AD) for i in range(3)]
    open_(pair.bob, messages[0])
    open_(pair.bob, messages[1])
    hk, dh = pair.bob._hkr, pair.bob._dhr
    assert hk is not None
    assert dh is not None
    open_(pair.alice, pair.bob.encrypt(b"reply", AD))
    open_(pair.bob, pair.alice.encrypt(b"chain 2", AD))
    _, section = _retired_section(pair.bob.to_bytes(), 1)
    assert section == (1).to_bytes(4, "big") + hk + dh.raw + (3).to_bytes(4, "big")


def test_from_bytes_refuses_more_than_retired_chains(pair):
    for _ in range(RETIRED_CHAINS + 1):
        open_(pair.bob, pair.alice.encrypt(b"", AD))
        open_(pair.alice, pair.bob.encrypt(b"", AD))
    data = pair.bob.to_bytes()
    head, section = _retired_section(data, RETIRED_CHAINS)
    entries = section[4:]
    assert DoubleRatchet.from_bytes(data, rng=pair.rng).to_bytes() == data
    extra = bytes(range(32)) + bytes(range(32, 64)) + (5).to_bytes(4, "big")
    over = head + (RETIRED_CHAINS + 1).to_bytes(4, "big") + entries + extra
    with pytest.raises(ValueError, match="not a valid ratchet state"):
        DoubleRatchet.from_bytes(over, rng=pair.rng)
    short = head + (RETIRED_CHAINS).to_bytes(4, "big") + entries[:-68]
    with pytest.raises(ValueError, match="not a valid ratchet state"):
        DoubleRatchet.from_bytes(short, rng=pair.rng)


def test_repr(pair):
    assert repr(pair.alice) == "DoubleRatchet(ns=0, nr=0, pn=0, skipped=0)"


# ---------------------------------------------------------------------------------- FS


def test_message_key_is_gone_once_the_message_is_read(pair):
    messages = [pair.alice.encrypt(bytes([i]), AD) for i in range(2)]
    open_(pair.bob, messages[1])  # message 0 is skipped: its key is cached until it arrives
    skipped_mk = next(iter(pair.bob._skipped.values()))[0]
    assert skipped_mk in pair.bob.to_bytes()
    open_(pair.bob, messages[0])
    assert skipped_mk not in pair.bob.to_bytes()
    # In-order reading: the chain key that derived the message key is replaced.
    ckr = pair.bob._ckr
    assert ckr is not None
    assert ckr in pair.bob.to_bytes()
    open_(pair.bob, pair.alice.encrypt(b"next", AD))
    state = pair.bob.to_bytes()
    assert ckr not in state
    assert chain_step(ckr)[1] not in state
