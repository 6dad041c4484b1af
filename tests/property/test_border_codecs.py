"""Border mode's codecs fuzzed with hypothesis (docs/protocol.md §17.12).

Round trips: a border state and a return request decode to what was encoded, and a
request's text parses back. Contracts for bytes from elsewhere:

* ``ReturnRequest.from_bytes`` / ``from_text`` (what a traveller sends the office): a value
  or ``UsageError``;
* ``BorderState.from_bytes`` (an authenticated plaintext): a value or ``VaultLockedError``;
* ``open_release`` (what the office sends back): the key of the genuine release only,
  else ``UsageError`` or ``BorderReleaseError``;
* the code: twelve digits, and the same for the same request only.
"""

from __future__ import annotations

import base64
import contextlib
import re

from hypothesis import given
from hypothesis import strategies as st

from burnerkit.app.border import (
    HOLDER_ISSUER,
    RELEASE_PREFIX,
    REQUEST_SIZE,
    SEALED_ESCROW_SIZE,
    STATE_SIZE,
    BorderState,
    ReturnRequest,
    code_of,
    open_release,
    release,
    same_code,
    seal_escrow,
)
from burnerkit.app.issuer import IssuerKeyPair
from burnerkit.crypto.keys import X25519PrivateKey
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.errors import BorderReleaseError, UsageError, VaultLockedError

RNG = DeterministicRandom(b"border property tests")
OFFICE = IssuerKeyPair.generate(RNG)
names = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,31}", fullmatch=True)
keys = st.binary(min_size=32, max_size=32)


@st.composite
def states(draw: st.DrawFn) -> BorderState:
    escrow = draw(st.binary(min_size=0, max_size=128))
    one_time = draw(st.none() | keys.map(X25519PrivateKey.from_bytes))
    return BorderState(
        HOLDER_ISSUER, draw(st.binary(min_size=16, max_size=16)), draw(names), escrow, one_time
    )


@given(states())
def test_border_state_round_trips_at_a_fixed_size(state: BorderState) -> None:
    data = state.to_bytes()
    assert len(data) == STATE_SIZE
    back = BorderState.from_bytes(data)
    assert back.to_bytes() == data
    assert (back.name, back.escrow, back.escrow_id) == (state.name, state.escrow, state.escrow_id)


@given(st.binary(min_size=STATE_SIZE, max_size=STATE_SIZE) | st.binary(max_size=300))
def test_any_state_bytes_give_a_state_or_a_locked_vault(data: bytes) -> None:
    with contextlib.suppress(VaultLockedError):
        BorderState.from_bytes(data)


@given(
    st.binary(min_size=16, max_size=16),
    keys,
    st.binary(min_size=SEALED_ESCROW_SIZE, max_size=SEALED_ESCROW_SIZE),
)
def test_return_request_round_trips_through_its_text(
    escrow_id: bytes, one_time: bytes, escrow: bytes
) -> None:
    request = ReturnRequest(escrow_id, X25519PrivateKey.from_bytes(one_time).public_key, escrow)
    assert len(request.to_bytes()) == REQUEST_SIZE
    assert ReturnRequest.from_text(request.to_text()) == request
    assert re.fullmatch(r"\d{4} \d{4} \d{4}", request.code)
    assert same_code(request.code.replace(" ", ""), request.code)


@given(st.binary(max_size=200) | st.binary(min_size=REQUEST_SIZE, max_size=REQUEST_SIZE))
def test_any_request_bytes_give_a_request_or_a_usage_error(data: bytes) -> None:
    with contextlib.suppress(UsageError):
        ReturnRequest.from_bytes(data)


@given(st.text(max_size=300))
def test_any_request_text_gives_a_request_or_a_usage_error(text: str) -> None:
    with contextlib.suppress(UsageError):
        ReturnRequest.from_text(text)


@given(st.binary(min_size=16, max_size=16), keys, keys)
def test_code_binds_the_one_time_key(escrow_id: bytes, mine: bytes, theirs: bytes) -> None:
    a = X25519PrivateKey.from_bytes(mine).public_key
    b = X25519PrivateKey.from_bytes(theirs).public_key
    if a != b:
        # 10^-12 per pair: a collision here would be a broken code, not bad luck.
        assert code_of(escrow_id, a) != code_of(escrow_id, b)


@given(
    st.binary(max_size=160), st.integers(min_value=0, max_value=96), st.integers(min_value=1, max_value=255)
)
def test_only_the_genuine_release_opens(junk: bytes, at: int, flip: int) -> None:
    one_time = X25519PrivateKey.generate(RNG)
    escrow_id, vault_key = RNG.random_bytes(16), RNG.random_bytes(32)
    escrow = seal_escrow(OFFICE.public.seal_key, escrow_id, vault_key, RNG)
    state = BorderState(HOLDER_ISSUER, escrow_id, "alice", escrow, one_time)
    request = ReturnRequest(escrow_id, one_time.public_key, escrow)
    text = release(OFFICE, request, request.code, RNG)
    assert open_release(state, text) == vault_key
    raw = bytearray(base64.urlsafe_b64decode(text[len(RELEASE_PREFIX) :] + "=="))
    raw[at] ^= flip
    for bad in (bytes(raw), junk):
        forged = RELEASE_PREFIX + base64.urlsafe_b64encode(bad).rstrip(b"=").decode()
        try:
            open_release(state, forged)
        except (BorderReleaseError, UsageError):
            continue
        raise AssertionError("a forged release opened")
