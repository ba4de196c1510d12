"""Which registration an upload copies: the same bytes or a near picture, never the
uploader's own, and the first that fits. On registrations alone, without pictures."""

from __future__ import annotations

from datetime import UTC, datetime

from stylebot.bot.core.optout import OptedOutImage, find_opted_out
from stylebot.bot.core.perceptual import PerceptualHash

AT = datetime(2026, 11, 22, tzinfo=UTC)
PHASH = PerceptualHash.from_hex("00000000000000ff")
NEAR = PerceptualHash.from_hex("00000000000000fe")  # one bit away
FAR = PerceptualHash.from_hex("ffffffffffffff00")


def registered(
    user: str, sha256: str, phash: PerceptualHash, platform: str = "discord"
) -> OptedOutImage:
    return OptedOutImage(platform, user, sha256, phash.hex, AT)


def test_the_same_bytes_match_however_far_the_hash() -> None:
    artist = registered("artist", "a" * 64, FAR)
    assert find_opted_out([artist], "a" * 64, PHASH, "discord", "someone") is artist


def test_a_near_picture_matches_whatever_its_bytes() -> None:
    artist = registered("artist", "a" * 64, PHASH)
    assert find_opted_out([artist], "b" * 64, NEAR, "discord", "someone") is artist


def test_a_different_picture_does_not_match() -> None:
    artist = registered("artist", "a" * 64, PHASH)
    assert find_opted_out([artist], "b" * 64, FAR, "discord", "someone") is None


def test_the_artists_own_registration_is_skipped_and_the_search_goes_on() -> None:
    own = registered("artist", "a" * 64, PHASH)
    others = registered("other", "c" * 64, PHASH)
    assert find_opted_out([own, others], "a" * 64, PHASH, "discord", "artist") is others
    assert find_opted_out([own], "a" * 64, PHASH, "discord", "artist") is None


def test_the_same_user_id_on_another_platform_is_someone_else() -> None:
    elsewhere = registered("artist", "a" * 64, PHASH, platform="telegram")
    assert find_opted_out([elsewhere], "a" * 64, PHASH, "discord", "artist") is elsewhere


def test_the_first_registration_that_fits_is_named() -> None:
    first = registered("one", "a" * 64, PHASH)
    second = registered("two", "a" * 64, PHASH)
    assert find_opted_out([first, second], "a" * 64, PHASH, "discord", "someone") is first
