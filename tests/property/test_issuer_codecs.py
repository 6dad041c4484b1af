"""The issuer's codecs and acceptance rule fuzzed with hypothesis (docs/protocol.md §17.9).

Round trips: issuer keys, order addresses, burn orders and issuer records decode to what
was encoded, and their texts parse back. Contracts for bytes from elsewhere:

* ``IssuerPublicKey.from_bytes``, ``OrderAddress.from_bytes``, ``BurnOrder.from_bytes``
  (peer bytes): a value or ``RemoteProtocolError`` (a small-order issuer key:
  ``InvalidKeyError``);
* ``IssuerPublicKey.from_text``, ``OrderAddress.from_text`` (typed text): a value or
  ``UsageError``;
* ``IssuerKeyPair.open_file`` (a file): a key pair or ``VaultLockedError``;
* ``judge`` (a queue message): a verdict, never an exception, and ``ACCEPTED`` only for
  the genuine order.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from burnerkit.app.issuer import (
    ISSUER_KEY_PREFIX,
    MAX_ORDER_LIFETIME,
    ORDER_ADDRESS_PREFIX,
    BurnOrder,
    IssuerKeyPair,
    IssuerPublicKey,
    IssuerRecord,
    OrderAddress,
    SeenOrder,
    Verdict,
    judge,
    seal_order,
)
from burnerkit.crypto.keys import SigningKey, X25519PrivateKey
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.errors import InvalidKeyError, RemoteProtocolError, UsageError, VaultLockedError
from burnerkit.relay.client import QueueCredentials
from burnerkit.relay.protocol import MAX_BODY_SIZE

NOW = 1_900_000_000
seeds = st.binary(min_size=1, max_size=16)
urls = st.sampled_from(
    ["ws://127.0.0.1:7000", "wss://relay.example.org", "wss://r.example#sha256=" + "A" * 43]
)
RNG = DeterministicRandom(b"issuer codecs")
PAIR = IssuerKeyPair.generate(RNG)
RECORD = IssuerRecord(
    PAIR.public,
    "ws://127.0.0.1:7000",
    QueueCredentials(
        RNG.random_bytes(24), RNG.random_bytes(24), SigningKey.generate(RNG), RNG.random_bytes(32)
    ),
    SigningKey.generate(RNG),
    RNG.random_bytes(16),
    X25519PrivateKey.generate(RNG),
)


@given(seeds)
def test_issuer_public_key_round_trips(seed: bytes) -> None:
    public = IssuerKeyPair.generate(DeterministicRandom(seed)).public
    assert IssuerPublicKey.from_bytes(public.to_bytes()) == public
    assert IssuerPublicKey.from_text(public.to_text()) == public
    assert public.to_text().startswith(ISSUER_KEY_PREFIX)


@given(st.binary(max_size=80))
def test_issuer_public_key_from_any_bytes_is_a_key_or_a_typed_error(data: bytes) -> None:
    try:
        public = IssuerPublicKey.from_bytes(data)
    except (RemoteProtocolError, InvalidKeyError):
        return
    assert public.to_bytes() == data


@given(st.text(max_size=120))
def test_issuer_key_text_is_a_key_or_a_usage_error(text: str) -> None:
    try:
        key = IssuerPublicKey.from_text(ISSUER_KEY_PREFIX + text)
    except UsageError:
        return
    assert key.to_text() == ISSUER_KEY_PREFIX + "".join(text.split())


@given(seeds, urls)
def test_order_address_round_trips(seed: bytes, url: str) -> None:
    rng = DeterministicRandom(seed)
    address = OrderAddress(
        url,
        rng.random_bytes(24),
        SigningKey.generate(rng),
        rng.random_bytes(16),
        X25519PrivateKey.generate(rng).public_key,
    )
    again = OrderAddress.from_text(address.to_text())
    assert again.to_bytes() == address.to_bytes()
    assert address.to_text().startswith(ORDER_ADDRESS_PREFIX)
    assert OrderAddress.from_bytes(address.to_bytes()).to_bytes() == address.to_bytes()


@given(st.binary(max_size=200))
def test_order_address_from_any_bytes_is_an_address_or_a_typed_error(data: bytes) -> None:
    try:
        address = OrderAddress.from_bytes(data)
    except RemoteProtocolError:
        return
    assert address.to_bytes() == data


@given(seeds, st.integers(0, 2**40), st.integers(1, MAX_ORDER_LIFETIME))
def test_burn_order_round_trips_and_verifies(seed: bytes, now: int, lifetime: int) -> None:
    rng = DeterministicRandom(seed)
    order = BurnOrder.issue(PAIR, rng.random_bytes(16), now=now, rng=rng, lifetime=lifetime)
    again = BurnOrder.from_bytes(order.to_bytes())
    assert again == order
    again.verify(PAIR.signing_key.verify_key)


@given(st.binary(max_size=160))
def test_burn_order_from_any_bytes_is_an_order_or_a_typed_error(data: bytes) -> None:
    try:
        order = BurnOrder.from_bytes(data)
    except RemoteProtocolError:
        return
    assert order.to_bytes() == data


@given(
    st.lists(
        st.tuples(st.binary(min_size=16, max_size=16), st.integers(0, 2**40), st.binary(max_size=24)),
        max_size=5,
    ),
    st.integers(0, 2**40),
)
def test_issuer_record_round_trips(seen: list[tuple[bytes, int, bytes]], floor: int) -> None:
    record = IssuerRecord(
        RECORD.issuer,
        RECORD.relay_url,
        RECORD.queue,
        RECORD.sender_key,
        RECORD.order_id,
        RECORD.order_key,
        floor,
        tuple(SeenOrder(nonce, at, at + 1, msg_id) for nonce, at, msg_id in seen),
    )
    assert IssuerRecord.from_bytes(record.to_bytes()).to_bytes() == record.to_bytes()


@settings(max_examples=10)
@given(st.binary(max_size=64))
def test_key_file_from_any_bytes_opens_or_refuses(data: bytes) -> None:
    genuine = PAIR.seal_file("a passphrase", FAST_TEST_KDF, DeterministicRandom(b"file"))
    for candidate in (data, genuine[: len(data)], data + genuine[len(data) :]):
        try:
            IssuerKeyPair.open_file(candidate, "a passphrase")
        except VaultLockedError:
            continue
        assert candidate == genuine


@settings(max_examples=25)
@given(
    st.binary(min_size=0, max_size=MAX_BODY_SIZE + 1), st.integers(0, MAX_BODY_SIZE - 1), st.integers(1, 255)
)
def test_judge_of_any_body_is_a_verdict_and_only_the_genuine_order_burns(
    noise: bytes, at: int, flip: int
) -> None:
    assert judge(RECORD, noise, now=NOW)[0] is Verdict.FORGED
    genuine = seal_order(
        BurnOrder.issue(PAIR, RECORD.order_id, now=NOW, rng=RNG), RECORD.order_key.public_key, RNG
    )
    tampered = bytearray(genuine)
    tampered[at] ^= flip
    assert judge(RECORD, bytes(tampered), now=NOW)[0] is Verdict.FORGED
    assert judge(RECORD, genuine, now=NOW)[0] is Verdict.ACCEPTED
