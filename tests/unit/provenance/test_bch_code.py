"""The mark's BCH code (version 4): what it repairs, what it refuses, and that random
words seldom decode (the CRC inside the message is the second check)."""

from __future__ import annotations

import numpy as np
import pytest

from stylebot.provenance import bch_code


def damaged(bits: np.ndarray, wrong: int, rng: np.random.Generator) -> np.ndarray:
    copy = bits.copy()
    copy[rng.choice(bch_code.LENGTH, wrong, replace=False)] ^= 1
    return copy


def test_a_codeword_is_128_bits_and_carries_its_message() -> None:
    message = bytes.fromhex("0123456789abcdef")
    bits = bch_code.encode(message)
    assert bits.shape == (128,)
    assert set(np.unique(bits)) <= {0, 1}
    assert bch_code.decode(bits) == (message, 0)


@pytest.mark.parametrize("wrong", range(1, 11))
def test_any_ten_wrong_bits_are_repaired(wrong: int) -> None:
    rng = np.random.default_rng(wrong)
    for _ in range(40):
        message = rng.bytes(8)
        assert bch_code.decode(damaged(bch_code.encode(message), wrong, rng)) == (message, wrong)


def test_the_parity_bit_alone_wrong_is_repaired() -> None:
    bits = bch_code.encode(bytes(8))
    bits[127] ^= 1
    assert bch_code.decode(bits) == (bytes(8), 1)


def test_eleven_wrong_bits_are_always_refused() -> None:
    # The extended code's distance is 22: 11 bits from one codeword is at least 11 from
    # every other, beyond the decoder's radius of 10.
    rng = np.random.default_rng(11)
    for _ in range(300):
        assert bch_code.decode(damaged(bch_code.encode(rng.bytes(8)), 11, rng)) is None


def test_random_words_seldom_decode_and_only_to_a_codeword_within_ten_bits() -> None:
    # About 2^-16 of all words lie within 10 bits of a codeword (module doc).
    rng = np.random.default_rng(5)
    accepted = 0
    for _ in range(4000):
        word = rng.integers(0, 2, 128).astype(np.uint8)
        decoded = bch_code.decode(word)
        if decoded is not None:
            accepted += 1
            distance = int(np.count_nonzero(bch_code.encode(decoded[0]) != word))
            assert distance == decoded[1] <= 10
    assert accepted <= 2


@pytest.mark.parametrize("wrong", [12, 16, 24, 40])
def test_words_far_off_decode_only_to_a_codeword_within_ten_bits(wrong: int) -> None:
    rng = np.random.default_rng(wrong)
    for _ in range(200):
        word = damaged(bch_code.encode(rng.bytes(8)), wrong, rng)
        decoded = bch_code.decode(word)
        if decoded is not None:
            distance = int(np.count_nonzero(bch_code.encode(decoded[0]) != word))
            assert distance == decoded[1] <= 10


def test_the_generator_divides_x127_plus_1() -> None:
    # So the code is cyclic: every codeword's shift is a codeword.
    assert bch_code._remainder((1 << 127) | 1) == 0
    message = bytes.fromhex("00000000000000ff")
    shifted = np.roll(bch_code.encode(message)[:127], 5)
    assert bch_code._remainder(sum(int(b) << k for k, b in enumerate(shifted))) == 0


def test_a_received_word_of_the_wrong_shape_or_values_is_refused() -> None:
    with pytest.raises(ValueError, match="128 values"):
        bch_code.decode(np.zeros(127, np.uint8))
    with pytest.raises(ValueError, match="128 values"):
        bch_code.decode(np.full(128, 2, np.uint8))


def test_a_message_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="8 bytes"):
        bch_code.encode(bytes(7))
