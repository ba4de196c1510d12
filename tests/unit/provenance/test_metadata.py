"""PNG provenance metadata: A1111 infotext, IPTC/XMP digital source type, stylebot id."""

from __future__ import annotations

import io
import json
import struct
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from tests.support.a1111 import a1111_parse, lora_hashes, lora_tags

from stylebot.provenance.metadata import (
    TRAINED_ALGORITHMIC_MEDIA,
    OutputMetadata,
    digital_source_type,
    encode_png,
    read_output_metadata,
    read_png_metadata,
    xmp_output_id,
)
from stylebot.provenance.watermark import embed_watermark, read_watermark

LORA_SHA256 = "3f2a9c1b7e6d5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a"
# The exported file's sshs_model_hash: another file, so another hash.
EXPORT_HASH = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d"


def make_meta(**changes: object) -> OutputMetadata:
    fields: dict[str, object] = {
        "output_id": "0a1b2c3d4e5f",
        "prompt": "a lighthouse at dusk, oil painting",
        "negative_prompt": "blurry, lowres",
        "seed": 1234567,
        "steps": 20,
        "guidance": 7.5,
        "width": 512,
        "height": 512,
        "sampler": "Euler a",
        "base_model": "runwayml/stable-diffusion-v1-5",
        "style_name": "harbour-sketch",
        "lora_hash": LORA_SHA256,
        "created_at": datetime(2025, 11, 22, 9, 30, 5, tzinfo=UTC),
        "lora_file_hash": EXPORT_HASH,
    }
    fields.update(changes)
    return OutputMetadata(**fields)  # type: ignore[arg-type]


def picture(size: tuple[int, int] = (256, 256)) -> Image.Image:
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def chunk_types(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, first 20 bytes of body) for each chunk of a PNG."""
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + min(length, 20)]))
        pos += 12 + length
    return chunks


def png_with_xmp(xmp: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp)
    buffer = io.BytesIO()
    picture((16, 16)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


# --- tests ----------------------------------------------------------------------------


def test_png_carries_all_provenance_chunks() -> None:
    data = encode_png(picture(), make_meta())
    chunks = read_png_metadata(data)
    assert set(chunks) == {"parameters", "Software", "stylebot", "XML:com.adobe.xmp"}
    assert chunks["Software"].startswith("stylebot")
    # XMP goes in an uncompressed iTXt chunk with the keyword the XMP spec prescribes.
    xmp_chunks = [(kind, head) for kind, head in chunk_types(data) if head.startswith(b"XML:")]
    assert xmp_chunks == [(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00")]


def test_parameters_parse_with_a1111_reader() -> None:
    parsed = a1111_parse(read_png_metadata(encode_png(picture(), make_meta()))["parameters"])
    assert parsed["Prompt"] == "a lighthouse at dusk, oil painting <lora:harbour-sketch:1>"
    assert parsed["Negative prompt"] == "blurry, lowres"
    assert parsed["Steps"] == "20"
    assert parsed["Sampler"] == "Euler a"
    assert parsed["CFG scale"] == "7.5"
    assert parsed["Seed"] == "1234567"
    assert (parsed["Size-1"], parsed["Size-2"]) == ("512", "512")
    assert parsed["Model"] == "runwayml/stable-diffusion-v1-5"
    assert "Model hash" not in parsed  # a hub id is no single file to hash
    # The exported file, as A1111 names and hashes it: applied by the tag, linked by hash.
    assert lora_tags(parsed["Prompt"]) == [("harbour-sketch", "1")]
    assert lora_hashes(parsed) == {"harbour-sketch": EXPORT_HASH[:12]}


def test_a_single_file_checkpoint_is_named_and_hashed_as_a1111_does() -> None:
    meta = make_meta(base_model="dreamshaper_8.safetensors", model_hash="879db523c3")
    parsed = a1111_parse(read_png_metadata(encode_png(picture(), meta))["parameters"])
    assert parsed["Model hash"] == "879db523c3"
    assert parsed["Model"] == "dreamshaper_8"


def test_parameters_layout_matches_a1111() -> None:
    text = read_png_metadata(encode_png(picture(), make_meta()))["parameters"]
    prompt, negative, params = text.split("\n")
    assert prompt == "a lighthouse at dusk, oil painting <lora:harbour-sketch:1>"
    assert negative == "Negative prompt: blurry, lowres"
    assert params.startswith("Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 1234567, ")
    assert f'Lora hashes: "harbour-sketch: {EXPORT_HASH[:12]}"' in params


def test_awkward_prompts_and_names_survive_a1111_parsing() -> None:
    meta = make_meta(
        prompt="line one: with colon\nline two, 灯台 🌅",
        negative_prompt="",
        sampler="DPM++ 2M Karras",
        base_model="my, model: v2",
        style_name="ink: wash, v3",
        guidance=7.0,
    )
    text = read_png_metadata(encode_png(picture(), meta))["parameters"]
    assert "Negative prompt:" not in text  # A1111 omits an empty negative prompt
    parsed = a1111_parse(text)
    assert parsed["Prompt"].startswith("line one: with colon\nline two, 灯台 🌅 <lora:")
    assert parsed["Negative prompt"] == ""
    assert parsed["Sampler"] == "DPM++ 2M Karras"
    assert parsed["Model"] == "my, model: v2"
    assert parsed["CFG scale"] == "7"
    assert parsed["Lora hashes"] == f"ink wash v3: {EXPORT_HASH[:12]}"


def test_no_lora_means_no_lora_hashes() -> None:
    meta = make_meta(style_name=None, lora_hash=None, lora_file_hash=None)
    parsed = a1111_parse(read_png_metadata(encode_png(picture(), meta))["parameters"])
    assert "Lora hashes" not in parsed
    assert parsed["Prompt"] == "a lighthouse at dusk, oil painting"
    assert parsed["Steps"] == "20"


def test_xmp_declares_trained_algorithmic_media_and_output_id() -> None:
    data = encode_png(picture(), make_meta())
    assert digital_source_type(data) == TRAINED_ALGORITHMIC_MEDIA
    assert xmp_output_id(data) == "0a1b2c3d4e5f"
    xmp = read_png_metadata(data)["XML:com.adobe.xmp"]
    assert xmp.startswith("<?xpacket begin=")
    assert xmp.endswith('<?xpacket end="r"?>')
    assert 'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"' in xmp


def test_xmp_escapes_user_text() -> None:
    data = encode_png(picture(), make_meta(style_name='<b>&"evil"</b>'))
    assert digital_source_type(data) == TRAINED_ALGORITHMIC_MEDIA  # still well-formed


@pytest.mark.parametrize(
    "description",
    [
        pytest.param(
            f'<rdf:Description Iptc4xmpExt:DigitalSourceType="{TRAINED_ALGORITHMIC_MEDIA}"'
            ' xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"/>',
            id="attribute",
        ),
        pytest.param(
            '<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
            f'<Iptc4xmpExt:DigitalSourceType rdf:resource="{TRAINED_ALGORITHMIC_MEDIA}"/>'
            "</rdf:Description>",
            id="resource",
        ),
    ],
)
def test_digital_source_type_reads_other_rdf_spellings(description: str) -> None:
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        f'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">{description}</rdf:RDF>'
        "</x:xmpmeta>"
    )
    assert digital_source_type(png_with_xmp(xmp)) == TRAINED_ALGORITHMIC_MEDIA


def test_digital_source_type_needs_the_iptc_namespace_not_just_the_name() -> None:
    # A regex would be fooled; the XML parser sees the wrong namespace.
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:Iptc4xmpExt="http://example.com/not-iptc/" '
        f'Iptc4xmpExt:DigitalSourceType="{TRAINED_ALGORITHMIC_MEDIA}"/></rdf:RDF></x:xmpmeta>'
    )
    assert digital_source_type(png_with_xmp(xmp)) is None


def test_missing_or_broken_xmp_gives_none() -> None:
    plain = io.BytesIO()
    picture((16, 16)).save(plain, format="PNG")
    assert digital_source_type(plain.getvalue()) is None
    assert digital_source_type(png_with_xmp("<x:xmpmeta><unclosed>")) is None
    assert digital_source_type(b"not a png at all") is None
    assert read_output_metadata(plain.getvalue()) is None


def test_read_png_metadata_refuses_non_png() -> None:
    jpeg = io.BytesIO()
    picture((16, 16)).save(jpeg, format="JPEG")
    with pytest.raises(ValueError, match="PNG"):
        read_png_metadata(jpeg.getvalue())


def test_output_metadata_round_trips() -> None:
    meta = make_meta(created_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))))
    back = read_output_metadata(encode_png(picture(), meta))
    assert back == meta  # equal instants, even though stored as UTC
    assert back is not None
    assert back.created_at.utcoffset() == timedelta(0)


def test_naive_created_at_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_meta(created_at=datetime(2025, 1, 1))


def test_pixels_and_watermark_survive_encoding() -> None:
    image = picture((512, 512))
    marked = embed_watermark(image, "0a1b2c3d4e5f")
    data = encode_png(marked, make_meta())
    decoded = Image.open(io.BytesIO(data))
    assert (np.asarray(decoded) == np.asarray(marked)).all()
    assert read_watermark(decoded) == "0a1b2c3d4e5f"


def test_metadata_of_outputs_made_before_the_export_hash_still_reads() -> None:
    meta = make_meta(lora_file_hash=None)
    fields = json.loads(meta.to_json())
    del fields["lora_file_hash"], fields["model_hash"]  # as stylebot wrote it before
    assert OutputMetadata.from_json(json.dumps(fields)) == meta
