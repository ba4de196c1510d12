"""Metadata that reserves AI training is found in every place an image keeps it."""

from __future__ import annotations

import pytest
from tests.unit.safety.reservations import (
    DMI,
    jpeg_with_c2pa_training_mining,
    jpeg_with_xmp,
    png_with_xmp,
    webp_with_xmp,
    xmp_with_data_mining,
)

from stylebot.bot.core.images import normalize_upload
from stylebot.bot.core.training_rights import training_reservation

PROHIBITED = [
    "DMI-PROHIBITED",
    "DMI-PROHIBITED-AIMLTRAINING",
    "DMI-PROHIBITED-GENAIMLTRAINING",
    "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING",
    "DMI-PROHIBITED-SEECONSTRAINT",  # "prohibited, see constraints" is still prohibited
]


@pytest.mark.parametrize("value", PROHIBITED)
@pytest.mark.parametrize(
    "build",
    [
        jpeg_with_xmp,
        webp_with_xmp,
        lambda p: png_with_xmp(p, compressed=False),
        lambda p: png_with_xmp(p, compressed=True),
    ],
    ids=["jpeg", "webp", "png", "png-compressed"],
)
def test_a_plus_data_mining_prohibition_is_found(value: str, build) -> None:  # type: ignore[no-untyped-def]
    data = build(xmp_with_data_mining(DMI + value))
    normalize_upload("photo.png", data)  # a valid image: only its metadata is the problem
    reason = training_reservation(data)
    assert reason is not None
    assert "Data Mining" in reason


def test_the_attribute_form_of_the_property_is_found_too() -> None:
    data = jpeg_with_xmp(xmp_with_data_mining(DMI + "DMI-PROHIBITED", as_attribute=True))
    assert training_reservation(data) is not None


@pytest.mark.parametrize("value", ["DMI-ALLOWED", "DMI-UNSPECIFIED"])
def test_permitting_or_unspecified_values_are_not_a_reservation(value: str) -> None:
    data = jpeg_with_xmp(xmp_with_data_mining(DMI + value))
    assert training_reservation(data) is None


@pytest.mark.parametrize("label", ["cawg.training-mining", "c2pa.training-mining"])
def test_a_c2pa_training_mining_not_allowed_is_found(label: str) -> None:
    data = jpeg_with_c2pa_training_mining("notAllowed", label)
    normalize_upload("photo.jpg", data)
    reason = training_reservation(data)
    assert reason is not None
    assert "C2PA" in reason


def test_a_c2pa_assertion_that_allows_training_is_not_a_reservation() -> None:
    assert training_reservation(jpeg_with_c2pa_training_mining("allowed")) is None


def test_broken_xmp_that_still_says_prohibited_is_honoured() -> None:
    broken = xmp_with_data_mining(DMI + "DMI-PROHIBITED").replace(b"</rdf:RDF>", b"")
    assert training_reservation(jpeg_with_xmp(broken)) is not None


def test_many_unclosed_packets_are_cheap() -> None:
    import time

    hostile = jpeg_with_xmp(b"<x:xmpmeta>") + b"<x:xmpmeta " * 500_000 + b"</x:xmpmeta>"
    started = time.perf_counter()
    assert training_reservation(hostile) is None
    assert time.perf_counter() - started < 2.0


def test_the_text_form_of_the_property_is_found_too() -> None:
    packet = xmp_with_data_mining(DMI + "DMI-PROHIBITED").replace(
        f'<plus:DataMining rdf:resource="{DMI}DMI-PROHIBITED"/>'.encode(),
        f"<plus:DataMining> {DMI}DMI-PROHIBITED </plus:DataMining>".encode(),
    )
    assert b"rdf:resource" not in packet
    assert training_reservation(jpeg_with_xmp(packet)) is not None
    allowed = packet.replace(b"DMI-PROHIBITED", b"DMI-ALLOWED")
    assert training_reservation(jpeg_with_xmp(allowed)) is None


@pytest.mark.parametrize(
    "broken",
    [
        # Broken XMP is read by its words, and it takes both: the property and the value.
        b"<x:xmpmeta><plus:DataMining>DMI-ALLOWED</x:xmpmeta>",
        b"<x:xmpmeta><plus:Other>DMI-PROHIBITED</x:xmpmeta>",
    ],
)
def test_broken_xmp_needs_both_the_property_and_a_prohibition(broken: bytes) -> None:
    assert training_reservation(jpeg_with_xmp(broken)) is None


def test_the_reasons_say_which_metadata_forbids_training() -> None:
    plus = jpeg_with_xmp(xmp_with_data_mining(DMI + "DMI-PROHIBITED"))
    assert training_reservation(plus) == (
        "its metadata (IPTC PLUS “Data Mining”) says its rights holder does not allow it to "
        "be used for AI training"
    )
    c2pa = jpeg_with_c2pa_training_mining("notAllowed")
    assert training_reservation(c2pa) == (
        "its Content Credentials (C2PA “training-mining” assertion) say it may not be used "
        "for AI training"
    )


def test_a_c2pa_not_allowed_for_something_other_than_training_is_no_reservation() -> None:
    data = jpeg_with_c2pa_training_mining("notAllowed", entries=("cawg.other_use",))
    assert training_reservation(data) is None
    every_use = ("cawg.ai_training", "cawg.ai_generative_training", "cawg.data_mining")
    every_use += ("cawg.ai_inference",)
    assert training_reservation(jpeg_with_c2pa_training_mining("notAllowed", entries=every_use))


def test_every_packet_is_read_not_only_the_last() -> None:
    prohibiting = xmp_with_data_mining(DMI + "DMI-PROHIBITED")
    allowing = xmp_with_data_mining(DMI + "DMI-ALLOWED")
    assert training_reservation(jpeg_with_xmp(prohibiting) + allowing) is not None


def test_at_most_16_packets_are_read() -> None:
    allowing = xmp_with_data_mining(DMI + "DMI-ALLOWED")
    prohibiting = xmp_with_data_mining(DMI + "DMI-PROHIBITED")
    image = jpeg_with_xmp(allowing)  # one packet
    assert training_reservation(image + allowing * 14 + prohibiting) is not None  # the 16th
    assert training_reservation(image + allowing * 15 + prohibiting) is None  # the 17th


@pytest.mark.parametrize("compressed", [False, True])
def test_a_bare_packet_without_its_xpacket_wrapper_is_found(compressed: bool) -> None:
    # The wrapper is optional; a PNG's text chunk may hold the packet from its first byte.
    bare = xmp_with_data_mining(DMI + "DMI-PROHIBITED")
    bare = bare[bare.index(b"<x:xmpmeta") : bare.index(b"</x:xmpmeta>") + len(b"</x:xmpmeta>")]
    assert training_reservation(png_with_xmp(bare, compressed=compressed)) is not None


def allowing_packet_that_mentions_the_prohibition() -> bytes:
    """Well-formed, allowing mining, with the prohibition's words in a description."""
    return xmp_with_data_mining(DMI + "DMI-ALLOWED").replace(
        b"</rdf:RDF>",
        b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/">'
        b"<dc:description>DataMining was DMI-PROHIBITED once</dc:description>"
        b"</rdf:Description></rdf:RDF>",
    )


def test_a_well_formed_packet_is_read_as_xml_not_by_its_words() -> None:
    packet = allowing_packet_that_mentions_the_prohibition()
    assert training_reservation(jpeg_with_xmp(packet)) is None
    # A stray start before it does not make it part of a broken one.
    assert training_reservation(jpeg_with_xmp(b"<x:xmpmeta " + packet)) is None


def test_ends_without_a_start_do_not_use_up_the_packets_read() -> None:
    prohibiting = xmp_with_data_mining(DMI + "DMI-PROHIBITED")
    assert training_reservation(jpeg_with_xmp(b"</x:xmpmeta>" * 16 + prohibiting)) is not None


def test_a_packet_over_a_mebibyte_is_not_read() -> None:
    padding = b" " * (1024 * 1024)
    huge = xmp_with_data_mining(DMI + "DMI-PROHIBITED").replace(
        b"</rdf:RDF>", padding + b"</rdf:RDF>"
    )
    assert training_reservation(jpeg_with_xmp(b"x") + huge) is None
