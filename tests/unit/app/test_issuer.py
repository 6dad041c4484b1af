"""The acceptance rule of burn orders (docs/protocol.md §17.9.4), on values alone.

Each refusal is named after the attack; each asserts the verdict and that the record to
store is the one given (nothing remembered), so a refused order changes nothing.
"""

from __future__ import annotations

import pytest

from burnerkit.app.issuer import (
    MAX_ORDER_LIFETIME,
    MAX_SKEW,
    REMEMBERED_ORDERS,
    BurnOrder,
    IssuerKeyPair,
    IssuerPublicKey,
    IssuerRecord,
    OrderAddress,
    Verdict,
    judge,
    open_report,
    seal_order,
    seal_report,
)
from burnerkit.app.views import EventView
from burnerkit.crypto.keys import SigningKey, X25519PrivateKey
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.errors import InvalidKeyError, UsageError, VaultLockedError
from burnerkit.relay.client import QueueCredentials

NOW = 1_900_000_000
RNG = DeterministicRandom(b"issuer unit tests")
OFFICE = IssuerKeyPair.generate(RNG)


def record_for(issuer: IssuerPublicKey) -> IssuerRecord:
    return IssuerRecord(
        issuer,
        "ws://127.0.0.1:7000",
        QueueCredentials(
            RNG.random_bytes(24), RNG.random_bytes(24), SigningKey.generate(RNG), RNG.random_bytes(32)
        ),
        SigningKey.generate(RNG),
        RNG.random_bytes(16),
        X25519PrivateKey.generate(RNG),
    )


RECORD = record_for(OFFICE.public)


def body(order: BurnOrder, record: IssuerRecord = RECORD) -> bytes:
    return seal_order(order, record.order_key.public_key, RNG)


def order(
    *, now: float = NOW, lifetime: int = 86400, signer: IssuerKeyPair = OFFICE, to: bytes = RECORD.order_id
) -> BurnOrder:
    return BurnOrder.issue(signer, to, now=now, rng=RNG, lifetime=lifetime)


def refused(message: bytes, verdict: Verdict, record: IssuerRecord = RECORD, now: float = NOW) -> None:
    got, kept = judge(record, message, now=now, msg_id=b"r" * 24)  # not the accepted delivery
    assert got is verdict
    assert kept is record


def test_valid_order_is_accepted_and_remembered() -> None:
    genuine = order()
    verdict, kept = judge(RECORD, body(genuine), now=NOW, msg_id=b"m" * 24)
    assert verdict is Verdict.ACCEPTED
    assert [(s.nonce, s.issued_at, s.not_after, s.msg_id) for s in kept.seen] == [
        (genuine.nonce, genuine.issued_at, genuine.not_after, b"m" * 24)
    ]


def test_forged_burn_order_signed_by_another_key_is_refused() -> None:
    refused(body(order(signer=IssuerKeyPair.generate(RNG))), Verdict.FORGED)


def test_forged_burn_order_with_a_bit_flipped_is_refused() -> None:
    genuine = bytearray(body(order()))
    genuine[100] ^= 1
    refused(bytes(genuine), Verdict.FORGED)


def test_burn_order_sealed_to_another_burner_is_refused_as_forged() -> None:
    other = record_for(OFFICE.public)
    refused(body(order(to=RECORD.order_id), record=other), Verdict.FORGED)


def test_misaddressed_burn_order_is_refused() -> None:
    refused(body(order(to=bytes(16))), Verdict.MISADDRESSED)


def test_replayed_burn_order_is_refused_from_another_delivery() -> None:
    message = body(order())
    _, kept = judge(RECORD, message, now=NOW, msg_id=b"m" * 24)
    refused(message, Verdict.REPLAYED, record=kept)
    assert judge(kept, message, now=NOW, msg_id=b"m" * 24)[0] is Verdict.ACCEPTED  # the same delivery again


def test_replayed_burn_order_resealed_is_refused() -> None:
    genuine = order()
    _, kept = judge(RECORD, body(genuine), now=NOW, msg_id=b"first")
    refused(body(genuine), Verdict.REPLAYED, record=kept)


def test_replayed_burn_order_forgotten_is_refused_by_the_floor() -> None:
    record = RECORD
    orders = [order(now=NOW + i) for i in range(REMEMBERED_ORDERS + 1)]
    for i, each in enumerate(orders):
        verdict, record = judge(record, body(each), now=NOW + i, msg_id=bytes([i % 256]) * 2)
        assert verdict is Verdict.ACCEPTED
    assert len(record.seen) == REMEMBERED_ORDERS
    assert record.floor == NOW  # the oldest was forgotten: its issued-at is the floor
    refused(body(orders[0]), Verdict.REPLAYED, record=record, now=NOW + 10)


@pytest.mark.parametrize(
    ("issued_at", "lifetime", "now"),
    [
        (NOW - 2 * 86400, 86400, NOW),  # past its not-after
        (NOW - 86400, 86400, NOW),  # not-after is exclusive
        (NOW + MAX_SKEW + 1, 86400, NOW),  # dated ahead of the burner beyond the skew
    ],
    ids=["expired", "at-not-after", "future"],
)
def test_stale_burn_order_is_refused(issued_at: int, lifetime: int, now: float) -> None:
    refused(body(order(now=issued_at, lifetime=lifetime)), Verdict.STALE, now=now)


def test_stale_burn_order_with_too_long_a_window_is_refused() -> None:
    genuine = order()
    # A window longer than 4 weeks can only be signed by hand: the issuer's code refuses it.
    not_after = NOW + MAX_ORDER_LIFETIME + 1
    signed = (
        b"\x01" + genuine.order_id + genuine.nonce + NOW.to_bytes(8, "big") + not_after.to_bytes(8, "big")
    )
    signature = OFFICE.signing_key.sign(b"burner/v1/sig/burn-order" + signed)
    long = BurnOrder(genuine.order_id, genuine.nonce, NOW, not_after, signature)
    long.verify(OFFICE.signing_key.verify_key)
    refused(body(long), Verdict.STALE)


def test_order_within_the_skew_is_accepted() -> None:
    assert judge(RECORD, body(order(now=NOW + MAX_SKEW)), now=NOW)[0] is Verdict.ACCEPTED


def test_issuer_key_of_small_order_is_refused() -> None:
    good = OFFICE.public.to_bytes()
    with pytest.raises(InvalidKeyError):
        IssuerPublicKey.from_bytes(good[:33] + bytes(32))  # X25519 zero point
    with pytest.raises(UsageError):
        IssuerPublicKey.from_text("burner:ik1.AAAA")


def test_key_file_refuses_a_wrong_passphrase() -> None:
    from burnerkit.crypto.passphrase import FAST_TEST_KDF

    data = OFFICE.seal_file("right passphrase", FAST_TEST_KDF, RNG)
    assert len(data) == 126
    assert IssuerKeyPair.open_file(data, "right passphrase").public == OFFICE.public
    with pytest.raises(VaultLockedError):
        IssuerKeyPair.open_file(data, "wrong passphrase")


def test_order_address_hides_its_secrets_in_repr() -> None:
    address = RECORD.address()
    assert "secret" in repr(address)
    assert address.sender_key.private_bytes().hex() not in repr(address)
    assert OrderAddress.from_text(address.to_text()).to_bytes() == address.to_bytes()


def test_report_opens_only_for_its_issuer() -> None:
    events = [EventView("bob", NOW, "fork", "two devices share one state")]
    report = seal_report(OFFICE.public, {"burner": "alice", "events": [events[0].to_json()]}, RNG)
    document = open_report(OFFICE, report)
    assert document["events"] == [events[0].to_json()]
    with pytest.raises(UsageError):
        open_report(IssuerKeyPair.generate(RNG), report)
    with pytest.raises(UsageError):
        open_report(OFFICE, report[:-1] + bytes([report[-1] ^ 1]))
