"""Builders of images whose metadata reserves (or allows) AI training, shared by tests."""

from __future__ import annotations

import io
import struct

from PIL import Image, PngImagePlugin

PLUS_NS = "http://ns.useplus.org/ldf/xmp/1.0/"
DMI = "http://ns.useplus.org/ldf/vocab/"


def xmp_with_data_mining(value: str, *, as_attribute: bool = False) -> bytes:
    """An XMP packet with plus:DataMining, as a photo tool writes it (either RDF form)."""
    if as_attribute:
        body = f'<rdf:Description rdf:about="" xmlns:plus="{PLUS_NS}" plus:DataMining="{value}"/>'
    else:
        body = (
            f'<rdf:Description rdf:about="" xmlns:plus="{PLUS_NS}">'
            f'<plus:DataMining rdf:resource="{value}"/></rdf:Description>'
        )
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f"{body}</rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


def _pattern() -> Image.Image:
    return Image.radial_gradient("L").convert("RGB").resize((128, 128))


def jpeg_with_xmp(packet: bytes) -> bytes:
    buffer = io.BytesIO()
    _pattern().save(buffer, "JPEG", xmp=packet)
    return buffer.getvalue()


def webp_with_xmp(packet: bytes) -> bytes:
    buffer = io.BytesIO()
    _pattern().save(buffer, "WEBP", xmp=packet)
    return buffer.getvalue()


def png_with_xmp(packet: bytes, *, compressed: bool) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", packet.decode(), zip=compressed)
    buffer = io.BytesIO()
    _pattern().save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def _cbor(value: object) -> bytes:
    """Just enough CBOR (RFC 8949) for maps of text: how C2PA stores an assertion."""

    def head(major: int, length: int) -> bytes:
        if length < 24:
            return bytes([major << 5 | length])
        if length < 256:
            return bytes([major << 5 | 24, length])
        return bytes([major << 5 | 25]) + struct.pack(">H", length)

    if isinstance(value, str):
        raw = value.encode()
        return head(3, len(raw)) + raw
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(_cbor(k) + _cbor(v) for k, v in value.items())
    raise TypeError(type(value))


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


TRAINING_ENTRIES = ("cawg.ai_generative_training", "cawg.ai_training", "cawg.data_mining")


def jpeg_with_c2pa_training_mining(
    use: str, label: str = "cawg.training-mining", entries: tuple[str, ...] = TRAINING_ENTRIES
) -> bytes:
    """A JPEG with a C2PA manifest store (JUMBF in APP11) holding a training-mining
    assertion, laid out as the C2PA spec does (superbox, description box, CBOR box);
    each of `entries` says `use`."""
    assertion = _cbor({"entries": {entry: {"use": use} for entry in entries}})
    cbor_type = bytes.fromhex("63626f7200110010800000aa00389b71")  # 'cbor' content type
    description = _box(b"jumd", cbor_type + b"\x03" + label.encode() + b"\x00")
    jumbf = _box(b"jumb", description + _box(b"cbor", assertion))
    # APP11 segment: common identifier "JP", box instance 1, sequence 1, then the box.
    segment_body = b"JP" + struct.pack(">HI", 1, 1) + jumbf
    app11 = b"\xff\xeb" + struct.pack(">H", 2 + len(segment_body)) + segment_body
    plain = io.BytesIO()
    _pattern().save(plain, "JPEG")
    data = plain.getvalue()
    return data[:2] + app11 + data[2:]  # right after SOI
