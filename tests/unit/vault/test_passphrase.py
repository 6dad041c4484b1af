"""``burnerkit.crypto.passphrase``: Argon2id with bounded parameters."""

from __future__ import annotations

import time

import pytest
from argon2.low_level import Type, hash_secret_raw

from burnerkit.crypto.passphrase import (
    DEFAULT_KDF,
    FAST_TEST_KDF,
    MAX_MEMORY_KIB,
    KdfParams,
    derive_key,
)

SALT = bytes(range(16))


def test_derive_key_is_argon2id_of_the_nfc_utf8_passphrase():
    expected = hash_secret_raw("café".encode(), SALT, 1, 8, 1, 32, Type.ID)
    assert derive_key("café", SALT, FAST_TEST_KDF) == expected
    # "e" + COMBINING ACUTE ACCENT is the same passphrase typed on another keyboard.
    assert derive_key("cafe\u0301", SALT, FAST_TEST_KDF) == expected


def test_each_parameter_changes_the_key():
    keys = {
        derive_key("pw", SALT, params)
        for params in (KdfParams(8, 1, 1), KdfParams(16, 1, 1), KdfParams(8, 2, 1), KdfParams(16, 1, 2))
    }
    assert len(keys) == 4


@pytest.mark.parametrize(
    ("memory", "iterations", "parallelism"),
    [
        (MAX_MEMORY_KIB + 1, 1, 1),
        (0xFFFFFFFF, 1, 1),  # 4 TiB
        (8, 0, 1),
        (8, 17, 1),
        (8, 0xFFFFFFFF, 1),
        (8, 1, 0),
        (16, 1, 17),
        (15, 1, 2),  # Argon2 needs 8 KiB per lane
        (MAX_MEMORY_KIB, 5, 1),  # each is allowed, their product is not
    ],
)
def test_absurd_parameters_are_refused_before_argon2_runs(memory, iterations, parallelism):
    started = time.perf_counter()
    with pytest.raises(ValueError, match="must"):
        KdfParams(memory, iterations, parallelism)
    assert time.perf_counter() - started < 0.05


def test_parameters_must_be_ints():
    with pytest.raises(TypeError):
        KdfParams(8.0, 1, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        KdfParams(8, True, 1)


def test_default_is_within_the_bounds_and_stronger_than_rfc9106_second_choice():
    assert DEFAULT_KDF.memory_kib >= 64 * 1024
    assert DEFAULT_KDF.iterations >= 3


def test_bad_salt_and_passphrase_types_are_misuse():
    with pytest.raises(ValueError, match="salt"):
        derive_key("pw", b"short", FAST_TEST_KDF)
    with pytest.raises(TypeError):
        derive_key(b"pw", SALT, FAST_TEST_KDF)  # type: ignore[arg-type]


def test_unencodable_passphrase_error_does_not_echo_it():
    with pytest.raises(ValueError, match="not valid unicode") as info:
        derive_key("abc\ud800secret", SALT, FAST_TEST_KDF)
    assert "secret" not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
