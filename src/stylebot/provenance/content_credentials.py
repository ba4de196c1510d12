"""C2PA Content Credentials on every output PNG, and reading them back for ``verify``.

The manifest, signed with the operator's certificate (:mod:`.signing`), says:

* ``c2pa.actions``: one ``c2pa.created`` action with digital source type
  ``trainedAlgorithmicMedia``, the software agent (stylebot and its version) and, as action
  parameters, the style and the base model;
* ``c2pa.soft-binding``: the invisible watermark, algorithm :data:`SOFT_BINDING_ALG`, whose
  value is the watermarked output id (base64 of its 6 bytes). A copy stripped of the
  manifest can be matched back to it through the watermark, which is what a soft binding is
  for;
* the data hash that ``c2pa-python`` (the ``c2pa-rs`` SDK) adds, which binds the manifest to
  these exact bytes: any change to the file shows as "Invalid";
* when the operator configures a time-stamping authority, an RFC 3161 timestamp of the
  signature. Without one, readers check the certificate against today's date, so every
  manifest reads "Invalid" (``signingCredential.expired``) once the certificate has
  expired; with one from a TSA they trust, against the time it vouches for.

Module name: ``c2pa`` itself is the SDK's import name, so this one says what it holds.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import c2pa
from PIL import Image

from stylebot.provenance.metadata import (
    TRAINED_ALGORITHMIC_MEDIA,
    OutputMetadata,
    encode_png,
    software_name,
)
from stylebot.provenance.signing import SigningIdentity, ensure_signing_identity

#: Names stylebot's watermark as written now (version 4: dwtDctSvd blocks with dither in
#: a tiled layout, BCH code, CRC), which tells a reader of the manifest which decoder
#: reads the binding from the pixels.
SOFT_BINDING_ALG = "org.stylebot.watermark.dwtdctsvd-tiled-bch.4"
#: The names read back: the one written now, and the one on outputs signed before
#: version 4 (versions 2 and 3 were both written so).
_OUR_SOFT_BINDING_ALGS = frozenset({SOFT_BINDING_ALG, "org.stylebot.watermark.dwtdctsvd-rs.2"})
_CREATED = "c2pa.created"
_EDITED = "c2pa.edited"  # a restyle: made from a picture (its parentOf ingredient)
_OPENED = "c2pa.opened"
_SOURCE_LABEL = "source"
# Failure codes about the certificate's dates, not the file's bytes.
_CREDENTIAL_PROBLEMS = frozenset({"signingCredential.expired"})


def finish_output_png(
    image: Image.Image,
    meta: OutputMetadata,
    identity: SigningIdentity | None,
    *,
    source: bytes | None = None,
) -> bytes:
    """The bytes of one output as it leaves the worker: PNG with the provenance chunks,
    then, when the operator has a signing identity, a signed C2PA manifest. ``source``:
    the picture a restyle started from, listed as the manifest's ingredient."""
    png = encode_png(image, meta)
    return sign_output_png(png, meta, identity, source=source) if identity is not None else png


def sign_output_png(
    png: bytes, meta: OutputMetadata, identity: SigningIdentity, *, source: bytes | None = None
) -> bytes:
    """``png`` with a signed C2PA manifest embedded (its text chunks are kept).

    With ``source`` (a restyle) the action is ``c2pa.edited`` and the picture is the
    ``parentOf`` ingredient: its hash, and its own manifest when it carries one (a
    stylebot output does), so a reader sees what the image was made from."""
    agent_name, _, agent_version = software_name().partition(" ")
    parameters: dict[str, Any] = {
        "style": meta.style_name,
        "base_model": meta.base_model,
        "output_id": meta.output_id,
    }
    if source is not None:
        # A restyle's strength; a sketch has none, but the ControlNet that followed it.
        if meta.denoising_strength is not None:
            parameters["denoising_strength"] = meta.denoising_strength
        if meta.controlnet is not None:
            parameters["controlnet"] = meta.controlnet
        parameters["source_sha256"] = meta.source_sha256
        if meta.source_output_id:
            parameters["source_output_id"] = meta.source_output_id
    # C2PA: the first action is created or opened; opening names the parent ingredient.
    opened = (
        []
        if source is None
        else [{"action": _OPENED, "parameters": {"ingredientIds": [_SOURCE_LABEL]}}]
    )
    manifest: dict[str, Any] = {
        "claim_generator_info": [{"name": agent_name, "version": agent_version or "dev"}],
        "title": f"stylebot-{meta.output_id}.png",
        "format": "image/png",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        *opened,
                        {
                            "action": _CREATED if source is None else _EDITED,
                            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                            "softwareAgent": {"name": software_name()},
                            "parameters": parameters,
                        },
                    ]
                },
            },
            {
                "label": "c2pa.soft-binding",
                "data": {
                    "alg": SOFT_BINDING_ALG,
                    "blocks": [
                        {
                            "scope": {},
                            "value": base64.b64encode(bytes.fromhex(meta.output_id)).decode(),
                        }
                    ],
                },
            },
        ],
    }
    # With a time-stamping authority the SDK asks it (RFC 3161) for a trusted time
    # while signing: the manifest then stays valid after the certificate expires.
    tsa = identity.tsa_url.encode() if identity.tsa_url else None
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, identity.chain_pem, identity.key_pem, tsa)
    signed = io.BytesIO()
    # No thumbnail: it would more than double the file for a picture that is its own preview.
    context = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})
    with (
        c2pa.Signer.from_info(info) as signer,
        c2pa.Builder(json.dumps(manifest), context) as builder,
    ):
        if source is not None:
            builder.add_ingredient(
                json.dumps(
                    {
                        "title": _source_title(meta),
                        "relationship": "parentOf",
                        "label": _SOURCE_LABEL,
                    }
                ),
                _mime(source) or "image/png",
                io.BytesIO(source),
            )
        builder.sign(signer, "image/png", io.BytesIO(png), signed)
    return signed.getvalue()


def _source_title(meta: OutputMetadata) -> str:
    if meta.source_output_id:
        return f"stylebot-{meta.source_output_id}.png"
    return f"picture sha256 {meta.source_sha256}"


@dataclass(frozen=True)
class CredentialsReport:
    """What a file's C2PA manifest says, and whether it holds."""

    state: str  # "Valid", "Trusted" or "Invalid" (the SDK's validation state)
    problems: tuple[str, ...]  # failure codes, e.g. "assertion.dataHash.mismatch"
    signer: str | None  # the signing certificate's issuer, as the SDK reports it
    digital_source_type: str | None
    style: str | None
    base_model: str | None
    watermark_id: str | None  # from the soft binding
    # When the signature was made, as its RFC 3161 timestamp says (ISO 8601); None
    # without a timestamp.
    signed_at: str | None = None
    # A restyle's parentOf ingredient in words (`_made_from`); None: made from text.
    made_from: str | None = None
    # A sketch's ControlNet as the infotext names it ("Module: canny, Model: NAME,
    # Weight: 1"); None: no ControlNet guided it.
    controlnet: str | None = None

    @property
    def valid(self) -> bool:
        """The manifest and the file are intact and the signature checks out (whether or
        not the signer's CA is on the trust list)."""
        return self.state in ("Valid", "Trusted") and not self.problems

    @property
    def trusted(self) -> bool:
        return self.valid and self.state == "Trusted"

    def describe(self) -> str:
        if self.valid:
            trust = "trusted signer" if self.trusted else "signer not on the trust list"
            signer = _quoted(self.signer) if self.signer else "?"
            head = f"Content Credentials (C2PA): valid, signed by {signer} ({trust})"
            if self.signed_at:
                head += f", timestamped {self.signed_at}"
        else:
            head = "Content Credentials (C2PA): INVALID, " + (
                "the signing certificate has expired and no trusted timestamp shows it "
                "was valid when signing"
                if self.problems and set(self.problems) <= _CREDENTIAL_PROBLEMS
                else "the file was changed after signing"
            )
            if self.problems:
                head += f" ({', '.join(self.problems[:3])})"
        made = " made by a trained model (trainedAlgorithmicMedia)"
        if self.digital_source_type != TRAINED_ALGORITHMIC_MEDIA:
            made = ""
        source = f"; made from {self.made_from}" if self.made_from else ""
        if self.controlnet:
            source += f", followed by the ControlNet {_quoted(self.controlnet, 160)}"
        return head + (f";{made}" if made else "") + source


def _quoted(text: str, limit: int = 64) -> str:
    """A name the file itself carries (anyone can sign with a certificate naming anything)
    as one quoted line: no line breaks or other control characters that could forge
    report lines, and no angle brackets that a chat or the web page would read as a
    mention or markup."""
    shown = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return repr(shown[:limit].replace("<", "‹").replace(">", "›"))


def read_content_credentials(
    data: bytes, trust_anchors_pem: bytes | None = None
) -> CredentialsReport | None:
    """The manifest of a PNG, JPEG or WebP, or None when it carries none (or none readable).

    ``trust_anchors_pem``: CA certificates to trust besides the SDK's own list, e.g. the
    operator's local CA, so that the bot's own outputs verify as "Trusted".
    """
    mime = _mime(data)
    if mime is None:
        return None
    settings: dict[str, Any] = {}
    if trust_anchors_pem:
        settings = {"trust": {"trust_anchors": trust_anchors_pem.decode()}}
    try:
        context = c2pa.Context.from_dict(settings)
        with c2pa.Reader(mime, io.BytesIO(data), None, context) as reader:
            state = reader.get_validation_state() or "Invalid"
            results = reader.get_validation_results() or {}
            store = json.loads(reader.json())
    except c2pa.C2paError:
        return None
    active = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    failures = results.get("activeManifest", {}).get("failure", []) if results else []
    # An unknown CA is not damage: it is what `trusted` reports.
    problems = tuple(
        code
        for code in (str(f.get("code", "?")) for f in failures)
        if code != "signingCredential.untrusted"
    )
    created: dict[str, Any] = {}
    binding: str | None = None
    for assertion in active.get("assertions", []):
        label = str(assertion.get("label", ""))
        body = assertion.get("data", {})
        if label.startswith("c2pa.actions"):
            for action in body.get("actions", []):
                if action.get("action") in (_CREATED, _EDITED):
                    created = action
        elif label == "c2pa.soft-binding" and body.get("alg") in _OUR_SOFT_BINDING_ALGS:
            blocks = body.get("blocks") or [{}]
            try:
                binding = base64.b64decode(str(blocks[0].get("value", ""))).hex() or None
            except ValueError:
                binding = None
    parameters = created.get("parameters", {}) or {}
    signature = active.get("signature_info", {}) or {}
    parents = [
        ingredient
        for ingredient in active.get("ingredients", [])
        if ingredient.get("relationship") == "parentOf"
    ]
    return CredentialsReport(
        state=str(state),
        problems=problems,
        signer=signature.get("issuer"),
        digital_source_type=created.get("digitalSourceType"),
        style=parameters.get("style"),
        base_model=parameters.get("base_model"),
        watermark_id=binding,
        signed_at=signature.get("time"),
        made_from=_made_from(parents[0], parameters, store) if parents else None,
        controlnet=str(parameters["controlnet"]) if parameters.get("controlnet") else None,
    )


def _made_from(
    ingredient: dict[str, Any], parameters: dict[str, Any], store: dict[str, Any]
) -> str:
    """The parent ingredient in words: its hash, and whose manifest it carried."""
    sha256 = str(parameters.get("source_sha256") or "")
    hashed = f"a picture with SHA-256 {sha256[:16]}…" if sha256 else "a picture"
    label = ingredient.get("active_manifest")
    parent = store.get("manifests", {}).get(label, {}) if label else {}
    if not parent:
        return f"{hashed} (no Content Credentials of its own)"
    claimed = parent.get("title") or "?"
    issuer = (parent.get("signature_info", {}) or {}).get("issuer")
    by = f", signed by {_quoted(issuer)}" if issuer else ""
    return f"{hashed}, with Content Credentials of its own ({_quoted(claimed)}{by})"


class C2paCredentialsReader:
    """The core's ``ContentCredentialsReader`` port: trusts the operator's own CA too."""

    def __init__(self, trust_anchors_pem: bytes | None = None) -> None:
        self.trust_anchors_pem = trust_anchors_pem

    def describe(self, data: bytes) -> str | None:
        report = read_content_credentials(data, self.trust_anchors_pem)
        return report.describe() if report is not None else None


def _mime(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def probe_time_stamping(tsa_url: str, scratch: Path) -> str:
    """Sign a small test image with a throwaway local identity (in ``scratch``) and a
    timestamp from ``tsa_url``, as the worker would, and return the time the authority
    vouched for. Raises ``ValueError`` saying what went wrong."""
    if not tsa_url.startswith(("http://", "https://")):
        raise ValueError(f"{tsa_url!r} is not an http(s) URL")
    identity = dataclasses.replace(ensure_signing_identity(scratch), tsa_url=tsa_url)
    meta = OutputMetadata(
        output_id="000000000000",
        prompt="time-stamping probe",
        negative_prompt="",
        seed=0,
        steps=1,
        guidance=1.0,
        width=16,
        height=16,
        sampler="probe",
        base_model="probe",
        style_name=None,
        lora_hash=None,
        created_at=datetime.now(UTC),
    )
    try:
        signed = sign_output_png(encode_png(Image.new("RGB", (16, 16)), meta), meta, identity)
    except c2pa.C2paError as exc:
        raise ValueError(f"signing with a timestamp from it failed: {exc}") from exc
    report = read_content_credentials(signed)
    if report is None or report.signed_at is None:
        raise ValueError("it answered, but the manifest carries no timestamp")
    return report.signed_at
