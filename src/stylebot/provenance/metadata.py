"""Provenance metadata written into every output PNG, and read back by ``verify``.

Each PNG carries, as text chunks:

* ``parameters``: the generation settings in the AUTOMATIC1111 "infotext" convention, so
  A1111's *PNG Info* tab, Civitai and most image browsers show them, and pasting them
  into A1111 selects the checkpoint (``Model hash``) and applies the style's exported
  LoRA (``<lora:NAME:1>`` in the prompt, ``Lora hashes``); see :mod:`.a1111_hashes`.
* ``XML:com.adobe.xmp`` (iTXt): an XMP packet that declares the image as made by a trained
  model (IPTC ``DigitalSourceType`` = ``trainedAlgorithmicMedia``), which is how
  platforms and photo tools recognise AI-generated images, plus ``stylebot:output_id``.
* ``stylebot``: the full :class:`OutputMetadata` as JSON, lossless and machine-readable
  (the infotext cannot be parsed back unambiguously, e.g. a prompt may contain newlines).
* ``Software``: the PNG-standard keyword naming the program.

Metadata is easy to strip; the invisible watermark (:mod:`.watermark`) is what survives
re-encoding. The two carry the same output id.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from typing import Any
from xml.sax.saxutils import escape

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from stylebot.provenance.a1111_hashes import LORA_SHORTHASH_LEN

IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
#: Namespace of stylebot's own XMP properties. A URN: it names, it need not resolve.
STYLEBOT_XMP_NS = "urn:stylebot:xmp:1.0#"
_RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_XMP_NS = "http://ns.adobe.com/xap/1.0/"
_XMP_KEY = "XML:com.adobe.xmp"  # the iTXt keyword the XMP spec assigns to PNG
_STYLEBOT_KEY = "stylebot"
# What A1111 strips from a checkpoint's file name for "Model" (CheckpointInfo.name_for_extra).
_CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")


@dataclass(frozen=True)
class OutputMetadata:
    """What made one output image. ``created_at`` must be timezone-aware (stored as UTC)."""

    output_id: str
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance: float
    width: int
    height: int
    sampler: str
    base_model: str
    style_name: str | None
    lora_hash: str | None  # sha256 hex of the LoRA weights as the worker holds them
    created_at: datetime
    # The exported LoRA file's (``<style_name>.safetensors``) sshs_model_hash, as A1111
    # and Civitai compute it; None without a LoRA. Absent from older outputs' JSON.
    lora_file_hash: str | None = None
    # A1111's short hash of a single-file base checkpoint; None for a folder or hub id.
    model_hash: str | None = None
    # A restyle (image-to-image): how much of the picture was drawn again (0-1), the
    # SHA-256 of the picture as the worker got it, and its output id when it was a
    # stylebot output. None for text-to-image.
    denoising_strength: float | None = None
    source_sha256: str | None = None
    source_output_id: str | None = None
    # A sketch: the ControlNet that guided it, as AUTOMATIC1111's ControlNet extension
    # writes its "ControlNet 0" ("Module: canny, Model: NAME, Weight: 1"). None: none.
    controlnet: str | None = None

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:
            raise ValueError("created_at must be timezone-aware (use datetime.now(UTC))")

    def to_json(self) -> str:
        """Compact JSON with ``created_at`` as an ISO 8601 UTC timestamp."""
        fields: dict[str, Any] = asdict(self)
        fields["created_at"] = _utc_iso(self.created_at)
        return json.dumps(fields, ensure_ascii=False, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> OutputMetadata:
        """Inverse of :meth:`to_json`; raises ``ValueError``/``KeyError``/``TypeError``."""
        fields = json.loads(text)
        fields["created_at"] = datetime.fromisoformat(fields["created_at"])
        return cls(**fields)


def software_name() -> str:
    """``stylebot <version>`` for the ``Software`` chunk and XMP ``CreatorTool``."""
    try:
        return f"stylebot {importlib_metadata.version('stylebot')}"
    except importlib_metadata.PackageNotFoundError:  # running from a source tree
        return "stylebot"


def a1111_parameters(meta: OutputMetadata) -> str:
    """The generation settings as an AUTOMATIC1111 infotext.

    Same layout as A1111's ``create_infotext``: the prompt, then ``Negative prompt: ...``
    (omitted when empty, as A1111 does), then one line of ``Key: value`` pairs where a
    value containing ``,``, ``:`` or a newline is JSON-quoted. A style's LoRA shows as
    A1111 writes one it applied: ``<lora:NAME:1>`` at the end of the prompt, NAME being
    the export's file name (``NAME.safetensors``), and ``Lora hashes: "NAME: shorthash"``
    with the first 12 hex digits of that file's ``sshs_model_hash`` (``:`` and ``,``
    removed from NAME). A single-file checkpoint gets ``Model hash`` and, as ``Model``,
    its file name without the extension.
    """
    model = meta.base_model
    params: list[tuple[str, object]] = [
        ("Steps", meta.steps),
        ("Sampler", meta.sampler),
        ("CFG scale", _format_float(meta.guidance)),
        ("Seed", meta.seed),
        ("Size", f"{meta.width}x{meta.height}"),
    ]
    if meta.model_hash:
        params.append(("Model hash", meta.model_hash))
        model = _checkpoint_name(model)
    params.append(("Model", model))
    if meta.denoising_strength is not None:
        # A1111's img2img key: what share of the picture was noised and drawn again.
        params.append(("Denoising strength", _format_float(meta.denoising_strength)))
    if meta.controlnet is not None:
        params.append(("ControlNet 0", meta.controlnet))
    prompt = meta.prompt
    if meta.lora_file_hash and meta.style_name:
        prompt = f"{prompt} <lora:{meta.style_name}:1>"
        alias = meta.style_name.replace(":", "").replace(",", "")
        params.append(("Lora hashes", f"{alias}: {meta.lora_file_hash[:LORA_SHORTHASH_LEN]}"))
    params.append(("Version", software_name()))
    line = ", ".join(f"{key}: {_a1111_quote(str(value))}" for key, value in params)
    negative = f"\nNegative prompt: {meta.negative_prompt}" if meta.negative_prompt else ""
    return f"{prompt}{negative}\n{line}"


def _checkpoint_name(file_name: str) -> str:
    for suffix in _CHECKPOINT_SUFFIXES:
        if file_name.lower().endswith(suffix):
            return file_name[: -len(suffix)]
    return file_name


def encode_png(image: Image.Image, meta: OutputMetadata) -> bytes:
    """``image`` as PNG bytes carrying the provenance chunks described in the module doc."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", a1111_parameters(meta))  # iTXt by itself if not Latin-1
    info.add_text("Software", software_name())
    info.add_text(_STYLEBOT_KEY, meta.to_json())
    info.add_itxt(_XMP_KEY, _xmp_packet(meta), lang="", tkey="", zip=False)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def read_png_metadata(data: bytes) -> dict[str, str]:
    """All text chunks (tEXt, zTXt, iTXt) of a PNG, keyword -> text.

    Raises ``ValueError`` if ``data`` is not a PNG.
    """
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            # PngImageFile.text also reaches chunks stored after the image data.
            text = getattr(image, "text", {})
            return {str(key): str(value) for key, value in text.items()}
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"not a readable PNG: {exc}") from exc


def digital_source_type(data: bytes) -> str | None:
    """The IPTC ``DigitalSourceType`` declared in a PNG's XMP packet, if any."""
    return _xmp_simple_property(data, f"{{{IPTC_EXT_NS}}}DigitalSourceType")


def xmp_output_id(data: bytes) -> str | None:
    """``stylebot:output_id`` from a PNG's XMP packet, if any."""
    return _xmp_simple_property(data, f"{{{STYLEBOT_XMP_NS}}}output_id")


def _xmp_simple_property(data: bytes, prop: str) -> str | None:
    """The first non-empty value of a simple property in a PNG's XMP packet.

    Accepts both RDF spellings of a simple property (an attribute of ``rdf:Description``
    or a child element, with a text value or an ``rdf:resource``). Returns ``None`` when
    there is no XMP, the XMP is not well-formed XML, or the property is absent.
    """
    root = _xmp_root(data)
    if root is None:
        return None
    for description in root.iter(f"{{{_RDF_NS}}}Description"):
        value = description.get(prop)
        element = description.find(prop)
        if value is None and element is not None:
            value = element.get(f"{{{_RDF_NS}}}resource") or element.text
        if value is not None and value.strip():
            return value.strip()
    return None


def read_output_metadata(data: bytes) -> OutputMetadata | None:
    """The :class:`OutputMetadata` stored in a stylebot PNG, or ``None`` if absent/invalid."""
    try:
        text = read_png_metadata(data).get(_STYLEBOT_KEY)
        return OutputMetadata.from_json(text) if text is not None else None
    except (ValueError, KeyError, TypeError):
        return None


def _xmp_root(data: bytes) -> ET.Element | None:
    try:
        packet = read_png_metadata(data).get(_XMP_KEY)
    except ValueError:
        return None
    if not packet:
        return None
    try:
        # ElementTree does not fetch external entities, and expat >= 2.4.1 (bundled since
        # Python 3.11) limits entity expansion, so a hostile packet cannot blow up.
        return ET.fromstring(packet)
    except ET.ParseError:
        return None


def _xmp_packet(meta: OutputMetadata) -> str:
    """An XMP packet (Adobe XMP spec part 1, section 7.3) with our properties."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        f' <rdf:RDF xmlns:rdf="{_RDF_NS}">\n'
        '  <rdf:Description rdf:about=""\n'
        f'    xmlns:xmp="{_XMP_NS}"\n'
        f'    xmlns:Iptc4xmpExt="{IPTC_EXT_NS}"\n'
        f'    xmlns:stylebot="{STYLEBOT_XMP_NS}">\n'
        f"   <xmp:CreatorTool>{escape(software_name())}</xmp:CreatorTool>\n"
        f"   <xmp:CreateDate>{escape(_utc_iso(meta.created_at))}</xmp:CreateDate>\n"
        "   <Iptc4xmpExt:DigitalSourceType>"
        f"{escape(TRAINED_ALGORITHMIC_MEDIA)}</Iptc4xmpExt:DigitalSourceType>\n"
        f"   <stylebot:output_id>{escape(meta.output_id)}</stylebot:output_id>\n"
        f"   <stylebot:style_name>{escape(meta.style_name or '')}</stylebot:style_name>\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="r"?>'
    )


def _a1111_quote(text: str) -> str:
    # Mirrors A1111's infotext_utils.quote so that its parser splits the line correctly.
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _format_float(value: float) -> str:
    return f"{value:g}"


def _utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
