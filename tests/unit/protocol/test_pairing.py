"""Pairing by short code, sans-IO (protocol/pairing.py, docs/protocol.md §16).

The machine is driven by hand: every test is a few synchronous calls, and every
forgery asserts the exact error and that the machine did not move.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.errors import (
    DecryptionError,
    DuplicateMessageError,
    LocalProtocolError,
    PairingCodeError,
    RemoteProtocolError,
)
from burnerkit.protocol.pairing import (
    MAX_PAYLOAD_SIZE,
    MessageKind,
    Pairing,
    PairingState,
    ShortCode,
    Side,
    decode_message,
    encode_message,
)
from burnerkit.protocol.wordlist import EVEN_WORDS, ODD_WORDS
from tests import vectorio
from tests.vectors.generate_pairing import build

CODE = ShortCode(7, ("acme", "adroitness"))
WRONG = ShortCode(7, ("acme", "adviser"))


def machines(
    code_a: ShortCode = CODE,
    code_b: ShortCode = CODE,
    payload_a: bytes = b"invitation",
    payload_b: bytes = b"ack",
) -> tuple[Pairing, Pairing]:
    a = Pairing(code_a, Side.A, payload_a, rng=DeterministicRandom(b"side a"))
    b = Pairing(code_b, Side.B, payload_b, rng=DeterministicRandom(b"side b"))
    return a, b


def snapshot(machine: Pairing) -> tuple[object, ...]:
    return (machine.state, machine._keys, machine._processed, machine._sent, machine._peer_payload)


def answer(machine: Pairing, body: bytes) -> bytes:
    """``machine.receive(body)``, which must answer."""
    reply = machine.receive(body)
    assert reply is not None
    return reply


def run(a: Pairing, b: Pairing) -> list[bytes]:
    """Drive both to the end; the whole transcript, in send order."""
    sent = [a.start(), b.start()]
    to_a, to_b = [sent[1]], [sent[0]]
    while to_a or to_b:
        if to_a:
            reply = a.receive(to_a.pop(0))
            if reply is not None:
                sent.append(reply)
                to_b.append(reply)
        if to_b:
            reply = b.receive(to_b.pop(0))
            if reply is not None:
                sent.append(reply)
                to_a.append(reply)
    return sent


# -- the word list -------------------------------------------------------------------------------


def test_word_list_is_the_pgp_list_unchanged():
    assert len(EVEN_WORDS) == len(ODD_WORDS) == 256
    assert len(set(EVEN_WORDS)) == len(set(ODD_WORDS)) == 256
    assert not set(EVEN_WORDS) & set(ODD_WORDS)
    assert all(w.isascii() and w.isalpha() and w.islower() for w in EVEN_WORDS + ODD_WORDS)
    assert (EVEN_WORDS[0], ODD_WORDS[0], EVEN_WORDS[255], ODD_WORDS[255]) == (
        "aardvark",
        "adroitness",
        "zulu",
        "yucatan",
    )
    digest = hashlib.sha256("\n".join(EVEN_WORDS + ODD_WORDS).encode()).hexdigest()
    assert digest == "41db18a831d9c40dc35b374ef36f0bf616d4f563768fcc1a5aa11c7b6530cf5e"


# -- the code --------------------------------------------------------------------------------------

separators = st.text(alphabet=" -\t", min_size=1, max_size=3)


@settings(max_examples=200, deadline=None)
@given(
    nameplate=st.integers(1, 65_535),
    seed=st.binary(min_size=1, max_size=8),
    seps=st.lists(separators, min_size=4, max_size=4),
    upper=st.lists(st.booleans(), min_size=3, max_size=3),
)
def test_code_parses_whatever_the_case_and_separators(nameplate, seed, seps, upper):
    code = ShortCode.generate(nameplate, DeterministicRandom(seed))
    parts = [p.upper() if u else p for p, u in zip(code.text.split("-"), upper, strict=True)]
    typed = seps[0].strip("-") + parts[0] + seps[1] + parts[1] + seps[2] + parts[2] + seps[3]
    assert ShortCode.parse(typed) == code
    assert ShortCode.parse(code.text).password == code.text.encode()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_parses_or_raises_value_error(text):
    try:
        code = ShortCode.parse(text)
    except ValueError:
        return
    assert ShortCode.parse(code.text) == code


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "a number and two or three words"),
        ("7-acme", "a number and two or three words"),
        ("7-acme-adroitness-acme-adroitness", "a number and two or three words"),
        ("7-acme-adroitness-adroitness", "word 3 of the code is out of place"),
        ("7-acme-adroitness-acmee", "word 3 of the code is not a code word"),
        ("acme-7-adroitness", "a number and two or three words"),
        ("0-acme-adroitness", "between 1 and 65535"),
        ("65536-acme-adroitness", "between 1 and 65535"),
        ("7-acmee-adroitness", "word 1 of the code is not a code word"),
        ("7-acme-crossbow", "word 2 of the code is not a code word"),
        ("7-adroitness-acme", "out of place"),
        ("\u0667-acme-adroitness", "a number and two or three words"),  # a non-ASCII digit
    ],
)
def test_bad_codes_get_a_clear_error_without_echoing_the_input(text, message):
    with pytest.raises(ValueError, match=message) as info:
        ShortCode.parse(text)
    for word in ("acmee", "crossbow", "acme"):
        assert word not in str(info.value)


def test_code_repr_shows_the_nameplate_only():
    assert repr(CODE) == "ShortCode(nameplate=7, words=<secret>)"
    assert "acme" not in str(CODE)
    assert CODE.text == "7-acme-adroitness"


@settings(max_examples=100, deadline=None)
@given(nameplate=st.integers(1, 65_535), seed=st.binary(min_size=1, max_size=8))
def test_three_word_code_parses_without_being_told_its_length(nameplate, seed):
    code = ShortCode.generate(nameplate, DeterministicRandom(seed), words=3)
    first, second, third = DeterministicRandom(seed).random_bytes(3)
    assert code.words == (EVEN_WORDS[first], ODD_WORDS[second], EVEN_WORDS[third])
    assert ShortCode.parse(code.text.upper().replace("-", " ")) == code
    assert code.password == code.text.encode()


@pytest.mark.parametrize("count", [0, 1, 4, 8])
def test_other_word_counts_are_refused(count):
    with pytest.raises(ValueError, match="2 or 3 words"):
        ShortCode.generate(7, DeterministicRandom(b"x"), words=count)
    words = tuple((EVEN_WORDS if i % 2 == 0 else ODD_WORDS)[i] for i in range(count))
    with pytest.raises(ValueError, match="2 or 3 words"):
        ShortCode(7, words)
    with pytest.raises(ValueError, match="a number and two or three words"):
        ShortCode.parse("-".join(("7", *words)))


def test_three_word_codes_pair_and_differ_from_their_two_word_prefix():
    long = ShortCode(7, ("acme", "adroitness", "aardvark"))
    a, b = machines(code_a=long, code_b=long)
    run(a, b)
    assert (a.state, b.state) == (PairingState.DONE, PairingState.DONE)
    a, b = machines(code_a=long, code_b=CODE)
    a_pake, b_pake = a.start(), b.start()
    b_confirm = answer(b, a_pake)
    answer(a, b_pake)
    with pytest.raises(PairingCodeError):
        a.receive(b_confirm)


def test_code_words_are_uniform_draws():
    code = ShortCode.generate(9, DeterministicRandom(b"x"))
    first, second = DeterministicRandom(b"x").random_bytes(2)
    assert code.words == (EVEN_WORDS[first], ODD_WORDS[second])
    with pytest.raises(ValueError, match="nameplate"):
        ShortCode(0, ("acme", "adroitness"))
    with pytest.raises(ValueError, match="word 2"):
        ShortCode(7, ("acme", "acme"))


# -- the machine -----------------------------------------------------------------------------------


def test_both_sides_get_each_others_payload():
    a, b = machines()
    sent = run(a, b)
    assert (a.state, b.state) == (PairingState.DONE, PairingState.DONE)
    assert (a.peer_payload, b.peer_payload) == (b"ack", b"invitation")
    kinds = [(decode_message(m).side, decode_message(m).kind) for m in sent]
    assert kinds == [
        (Side.A, MessageKind.PAKE),
        (Side.B, MessageKind.PAKE),
        (Side.A, MessageKind.CONFIRM),
        (Side.B, MessageKind.CONFIRM),
        (Side.A, MessageKind.PAYLOAD),
        (Side.B, MessageKind.PAYLOAD),
    ]


def test_payload_size_does_not_show_on_the_wire():
    small = run(*machines(payload_a=b""))
    large = run(*machines(payload_a=b"x" * MAX_PAYLOAD_SIZE))
    assert [len(m) for m in small] == [len(m) for m in large]
    assert b"invitation" not in b"".join(run(*machines()))


def test_wrong_code_fails_on_both_sides_and_nothing_is_revealed():
    a, b = machines(code_b=WRONG)
    a_pake, b_pake = a.start(), b.start()
    a_confirm, b_confirm = answer(a, b_pake), answer(b, a_pake)
    with pytest.raises(PairingCodeError):
        a.receive(b_confirm)
    with pytest.raises(PairingCodeError):
        b.receive(a_confirm)
    assert (a.state, b.state) == (PairingState.FAILED, PairingState.FAILED)
    for machine in (a, b):
        with pytest.raises(LocalProtocolError):
            machine.receive(a_confirm)
        with pytest.raises(LocalProtocolError):
            _ = machine.peer_payload


def test_confirmation_sent_marks_where_a_guesser_can_test_its_guess_offline():
    """From our CONFIRM on, the other end can check its password against it without answering."""
    a, guesser = machines(code_b=WRONG)
    assert not a.confirmation_sent
    a_pake, guesser_pake = a.start(), guesser.start()
    assert not a.confirmation_sent
    a_confirm = answer(a, guesser_pake)
    assert a.confirmation_sent
    # The guesser's verdict, offline: our confirmation does not verify under its password.
    answer(guesser, a_pake)
    with pytest.raises(PairingCodeError):
        guesser.receive(a_confirm)
    # An honest run: still true while our payload waits for theirs, false once done.
    a, b = machines()
    a_pake, b_pake = a.start(), b.start()
    b_confirm = answer(b, a_pake)
    a_confirm = answer(a, b_pake)
    b_payload = answer(b, a_confirm)
    answer(a, b_confirm)
    assert a.confirmation_sent
    a.receive(b_payload)
    assert not a.confirmation_sent


def test_guesser_confirmation_cannot_be_retried():
    """One wrong confirmation is fatal: a guesser cannot send a second guess."""
    a, guesser = machines(code_b=WRONG)
    guesser_pake = guesser.start()
    a.start()
    a.receive(guesser_pake)
    with pytest.raises(PairingCodeError):
        a.receive(answer(guesser, a._sent[0]))
    _, honest = machines()
    honest.start()
    with pytest.raises(LocalProtocolError):
        a.receive(answer(honest, a._sent[0]))


def test_replayed_pake_message_is_rejected():
    a, b = machines()
    a.start()
    b_pake = b.start()
    a.receive(b_pake)
    before = snapshot(a)
    with pytest.raises(DuplicateMessageError):
        a.receive(b_pake)
    assert snapshot(a) == before


def test_reflected_message_is_rejected():
    a, b = machines()
    a_pake = a.start()
    b.start()
    before = snapshot(a)
    with pytest.raises(RemoteProtocolError, match="sent back"):
        a.receive(a_pake)
    flipped = a_pake[:2] + b"B" + a_pake[3:]  # our own PAKE, with the side byte changed
    with pytest.raises(RemoteProtocolError, match="sent back"):
        a.receive(flipped)
    assert snapshot(a) == before
    a_confirm = answer(a, b._sent[0])
    with pytest.raises(RemoteProtocolError, match="sent back"):
        a.receive(a_confirm[:2] + b"B" + a_confirm[3:])
    assert a.state is PairingState.AWAITING_CONFIRM


def test_message_claiming_our_side_is_rejected():
    a, b = machines()
    a.start()
    b_pake = b.start()
    with pytest.raises(RemoteProtocolError, match="our side"):
        a.receive(b_pake[:2] + b"A" + b_pake[3:])
    assert a.state is PairingState.AWAITING_PAKE


def test_out_of_order_message_is_rejected_and_changes_nothing():
    a, b = machines()
    a_pake = a.start()
    b.start()
    b_confirm = answer(b, a_pake)
    before = snapshot(a)
    with pytest.raises(RemoteProtocolError, match="unexpected CONFIRM"):
        a.receive(b_confirm)
    assert snapshot(a) == before
    a.receive(b._sent[0])
    assert a.state is PairingState.AWAITING_CONFIRM


def test_invalid_pake_point_is_rejected_and_changes_nothing():
    a, b = machines()
    a.start()
    before = snapshot(a)
    forged = encode_message(MessageKind.PAKE, Side.B, b"S\x01" + bytes(31))  # the identity point
    with pytest.raises(RemoteProtocolError, match="invalid PAKE"):
        a.receive(forged)
    assert snapshot(a) == before
    a.receive(b.start())
    assert a.state is PairingState.AWAITING_CONFIRM


def test_tampered_payload_is_rejected_and_the_genuine_one_still_opens():
    a, b = machines()
    a_pake, b_pake = a.start(), b.start()
    a_confirm, b_confirm = answer(a, b_pake), answer(b, a_pake)
    a_payload = answer(a, b_confirm)
    b.receive(a_confirm)
    before = snapshot(b)
    for position in (3, 20, len(a_payload) - 1):
        tampered = bytearray(a_payload)
        tampered[position] ^= 1
        with pytest.raises(DecryptionError):
            b.receive(bytes(tampered))
        assert snapshot(b) == before
    b.receive(a_payload)
    assert b.peer_payload == b"invitation"


def test_payload_of_another_nameplate_does_not_open():
    """The payload AD binds the nameplate; a payload moved between mailboxes fails."""
    a, b = machines()
    a_pake, b_pake = a.start(), b.start()
    b.receive(a_pake)
    a_confirm = answer(a, b_pake)
    b.receive(a_confirm)
    other_a, other_b = machines(code_a=ShortCode(8, CODE.words), code_b=ShortCode(8, CODE.words))
    foreign = run(other_a, other_b)[4]
    with pytest.raises(DecryptionError):
        b.receive(foreign)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=200)
    | st.builds(
        lambda k, s, d: bytes([1, k]) + s + d,
        st.integers(0, 5),
        st.sampled_from([b"A", b"B", b"C"]),
        st.binary(max_size=40),
    )
)
def test_any_bytes_give_a_typed_error_and_change_nothing(data):
    a, _ = machines()
    a.start()
    before = snapshot(a)
    with pytest.raises((RemoteProtocolError, DuplicateMessageError)):
        a.receive(data)
    assert snapshot(a) == before


def test_misuse_raises_local_errors():
    a, _ = machines()
    with pytest.raises(LocalProtocolError):
        a.receive(b"x")
    a.start()
    with pytest.raises(LocalProtocolError):
        a.start()
    with pytest.raises(ValueError, match="at most"):
        Pairing(CODE, Side.A, bytes(MAX_PAYLOAD_SIZE + 1), rng=DeterministicRandom(b"x"))
    assert repr(a) == "Pairing(side=A, state=AWAITING_PAKE)"


# -- the frozen transcript -------------------------------------------------------------------------

V = vectorio.load("pairing_v1")
#: The 2-word transcript (the top level) and the 3-word one, in the same layout.
TRANSCRIPTS = pytest.mark.parametrize("t", [V, V["three_words"]], ids=["2-words", "3-words"])


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    prk = hmac.digest(salt, ikm, "sha256")
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes([counter]), "sha256")
        out += block
        counter += 1
    return out[:length]


def test_pairing_vector_regenerates_byte_for_byte():
    assert build() == V


def test_pairing_vector_has_a_three_word_code():
    assert len(V["code"].split("-")) == 3
    assert len(V["three_words"]["code"].split("-")) == 4
    assert ShortCode.parse(V["three_words"]["code"]).words[2] in EVEN_WORDS


@TRANSCRIPTS
def test_pairing_vector_rederived_independently(t):
    m = {name: bytes.fromhex(value) for name, value in t["messages"].items()}
    nameplate = t["nameplate"].to_bytes(2, "big")
    assert bytes.fromhex(t["password"]) == t["code"].encode()
    assert bytes.fromhex(t["spake2_identity"]) == b"burner/v1/pairing/spake2" + nameplate
    assert m["a_pake"][:3] == b"\x01\x01A"
    assert m["b_pake"][:3] == b"\x01\x01B"
    transcript = hashlib.sha256(b"burner/v1/pairing/spake2" + nameplate + m["a_pake"] + m["b_pake"]).digest()
    key = bytes.fromhex(t["spake2_key"])
    for side, confirm in ((b"A", m["a_confirm"]), (b"B", m["b_confirm"])):
        confirm_key = hkdf_sha256(key, transcript, b"burner/v1/pairing/confirm" + side, 32)
        assert confirm == b"\x01\x02" + side + hmac.digest(confirm_key, transcript, "sha256")
    for side, sealed, payload in (
        (b"A", m["a_payload"], bytes.fromhex(t["payload_a"])),
        (b"B", m["b_payload"], bytes.fromhex(t["payload_b"])),
    ):
        payload_key = hkdf_sha256(key, transcript, b"burner/v1/pairing/payload" + side, 32)
        head = b"\x01\x03" + side
        plain = AESGCM(payload_key).decrypt(
            sealed[3:15], sealed[15:], b"burner/v1/pairing/payload" + head + nameplate
        )
        assert len(plain) == 2 + 4096
        assert plain == (len(payload).to_bytes(2, "big") + payload).ljust(2 + 4096, b"\0")


@TRANSCRIPTS
def test_pairing_vector_replays_on_a_fresh_machine(t):
    code = ShortCode.parse(t["code"])
    m = {name: bytes.fromhex(value) for name, value in t["messages"].items()}
    b = Pairing(
        code, Side.B, bytes.fromhex(t["payload_b"]), rng=DeterministicRandom(bytes.fromhex(t["seeds"]["b"]))
    )
    assert b.start() == m["b_pake"]
    assert b.receive(m["a_pake"]) == m["b_confirm"]
    assert b.receive(m["a_confirm"]) == m["b_payload"]
    assert b.receive(m["a_payload"]) is None
    assert b.peer_payload == bytes.fromhex(t["payload_a"])
