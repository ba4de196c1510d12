"""Does an upload's own metadata forbid AI training? Then we refuse it, whoever sends it.

Two machine-readable reservations are honoured:

* IPTC / PLUS ``plus:DataMining`` in an XMP packet (IPTC Photo Metadata Standard 2023.1):
  any of the ``http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED...`` values (prohibited
  outright, for AI/ML training, for generative AI/ML training, or except for search
  engine indexing) rules out training a style.
* A C2PA / CAWG ``training-mining`` assertion (``cawg.training-mining``, formerly
  ``c2pa.training-mining``) with ``"use": "notAllowed"`` for training or data mining.

Only the raw bytes are read, before normalising strips the metadata; the image has already
passed :func:`~stylebot.bot.core.images.normalize_upload`, so the bytes are a real PNG,
JPEG or WebP within the size limit. XMP is found wherever the format keeps it (JPEG APP1,
PNG iTXt - also compressed -, WebP ``XMP `` chunk) by looking for the packet itself, and
parsed with ElementTree, which fetches no external entities (expat >= 2.4.1 also bounds
entity expansion). C2PA's JUMBF boxes hold CBOR in which the labels and values appear as
plain strings, so the assertion is found by its label and checked in a bounded window
after it, without a full JUMBF/CBOR parser.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

from PIL import Image

PLUS_NS = "http://ns.useplus.org/ldf/xmp/1.0/"
DMI_PROHIBITED_PREFIX = "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED"
_RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_XMP_START = b"<x:xmpmeta"
_XMP_END = b"</x:xmpmeta>"
# Bounds that keep a hostile file (a million unclosed "<x:xmpmeta") from costing more
# than a few linear scans: real packets are kilobytes, and files carry one or two.
_MAX_PACKET = 1024 * 1024
_MAX_PACKETS = 16
_TRAINING_MINING_LABEL = re.compile(rb"(?:cawg|c2pa)\.training-mining")
# An assertion's entries follow its label within a few hundred bytes; 4 KiB is generous
# and keeps a 20 MB file from being searched end to end for each label.
_ASSERTION_WINDOW = 4096
_NOT_ALLOWED = b"notAllowed"
_TRAINING_USES = (
    b"ai_training",
    b"ai_generative_training",
    b"data_mining",
    b"ai_inference",
)


def training_reservation(data: bytes) -> str | None:
    """Why this file may not be used for training (a sentence), or None if nothing says so."""
    for packet in _xmp_packets(data):
        if _plus_prohibits(packet):
            return (
                "its metadata (IPTC PLUS “Data Mining”) says its rights holder does not allow "
                "it to be used for AI training"
            )
    if _c2pa_prohibits(data):
        return (
            "its Content Credentials (C2PA “training-mining” assertion) say it may not be "
            "used for AI training"
        )
    return None


def _xmp_packets(data: bytes) -> list[bytes]:
    packets = _find_packets(data)
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        # A compressed iTXt chunk hides the packet from a byte search; Pillow inflates it
        # (capped at ImageFile's MAX_TEXT_CHUNK, so a zip bomb in a chunk is refused).
        try:
            with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
                for key, value in getattr(image, "text", {}).items():
                    if "xmp" in str(key).lower():
                        text = str(value).encode("utf-8")
                        packets.extend(_find_packets(text))
        except Exception:
            pass  # damaged chunks: the byte search above is all we can do
    return packets


def _find_packets(data: bytes) -> list[bytes]:
    """XMP packets, found from their ends backwards: one linear pass however hostile."""
    packets: list[bytes] = []
    position = 0
    while len(packets) < _MAX_PACKETS:
        end = data.find(_XMP_END, position)
        if end == -1:
            break
        start = data.rfind(_XMP_START, max(position, end - _MAX_PACKET), end)
        if start != -1:
            packets.append(data[start : end + len(_XMP_END)])
        position = end + len(_XMP_END)
    return packets


def _plus_prohibits(packet: bytes) -> bool:
    try:
        root = ET.fromstring(packet)
    except ET.ParseError:
        # Not well-formed: fall back to the words themselves rather than ignore a
        # reservation because of a typo in someone's XMP.
        return b"DataMining" in packet and b"DMI-PROHIBITED" in packet
    tag = f"{{{PLUS_NS}}}DataMining"
    for element in root.iter():
        values = [element.attrib.get(tag, "")]
        if element.tag == tag:
            values.append(element.attrib.get(f"{{{_RDF_NS}}}resource", ""))
            values.extend(text for text in element.itertext())
        if any(v.strip().startswith(DMI_PROHIBITED_PREFIX) for v in values):
            return True
    return False


def _c2pa_prohibits(data: bytes) -> bool:
    for label in _TRAINING_MINING_LABEL.finditer(data):
        window = data[label.end() : label.end() + _ASSERTION_WINDOW]
        if _NOT_ALLOWED in window and any(use in window for use in _TRAINING_USES):
            return True
    return False
