"""A restyled output's provenance: the picture it started from is its C2PA parentOf
ingredient (with that picture's own manifest when it had one), and its infotext says
``Denoising strength`` as AUTOMATIC1111 does."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from pathlib import Path

import c2pa
import numpy as np
import pytest
from PIL import Image
from tests.unit.provenance.test_content_credentials import META

from stylebot.provenance.content_credentials import read_content_credentials, sign_output_png
from stylebot.provenance.metadata import a1111_parameters, encode_png, read_output_metadata
from stylebot.provenance.signing import SigningIdentity, ensure_signing_identity
from stylebot.provenance.watermark import embed_watermark


def _picture(seed: int) -> Image.Image:
    coarse = np.random.default_rng(seed).integers(0, 256, (9, 9, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((256, 256), Image.Resampling.BICUBIC)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> SigningIdentity:
    return ensure_signing_identity(tmp_path_factory.mktemp("c2pa"))


def _restyled(
    source: bytes,
    identity: SigningIdentity,
    source_output_id: str | None,
    *,
    denoising_strength: float | None = 0.55,
    controlnet: str | None = None,
) -> bytes:
    meta = dataclasses.replace(
        META,
        output_id="bbbbbbbbbbbb",
        denoising_strength=denoising_strength,
        controlnet=controlnet,
        source_sha256=hashlib.sha256(source).hexdigest(),
        source_output_id=source_output_id,
    )
    png = encode_png(embed_watermark(_picture(5), meta.output_id), meta)
    return sign_output_png(png, meta, identity, source=source)


def _store(data: bytes) -> dict[str, object]:
    with c2pa.Reader("image/png", io.BytesIO(data)) as reader:
        store: dict[str, object] = json.loads(reader.json())
    return store


def test_a_restyle_of_a_plain_picture_lists_it_as_parent_by_hash(
    identity: SigningIdentity,
) -> None:
    source = _png(_picture(1))
    signed = _restyled(source, identity, None)
    report = read_content_credentials(signed)
    assert report is not None
    assert report.valid, report
    store = _store(signed)
    active = store["manifests"][store["active_manifest"]]  # type: ignore[index]
    [ingredient] = active["ingredients"]
    assert ingredient["relationship"] == "parentOf"
    actions = [
        a
        for x in active["assertions"]
        if x["label"].startswith("c2pa.actions")
        for a in x["data"]["actions"]
    ]
    assert [a["action"] for a in actions] == ["c2pa.opened", "c2pa.edited"]
    assert actions[1]["parameters"]["source_sha256"] == hashlib.sha256(source).hexdigest()
    assert report.made_from is not None
    assert hashlib.sha256(source).hexdigest()[:16] in report.made_from
    assert "no Content Credentials of its own" in report.made_from
    assert "made from" in report.describe()


def test_a_restyle_of_a_signed_output_carries_that_outputs_manifest(
    identity: SigningIdentity,
) -> None:
    earlier = sign_output_png(
        encode_png(embed_watermark(_picture(2), META.output_id), META), META, identity
    )
    signed = _restyled(earlier, identity, META.output_id)
    report = read_content_credentials(signed)
    assert report is not None
    assert report.valid, report
    store = _store(signed)
    # The earlier output's manifest travels inside the new one, as its ingredient's.
    assert len(store["manifests"]) == 2  # type: ignore[arg-type]
    assert report.made_from is not None
    assert "Content Credentials of its own" in report.made_from
    assert "no Content" not in report.made_from
    assert f"stylebot-{META.output_id}.png" in report.made_from


def test_a_sketchs_manifest_names_its_controlnet_and_no_strength(
    identity: SigningIdentity,
) -> None:
    named = "Module: canny, Model: control_v11p_sd15_canny, Weight: 0.8"
    signed = _restyled(_png(_picture(6)), identity, None, denoising_strength=None, controlnet=named)
    report = read_content_credentials(signed)
    assert report is not None
    assert report.valid, report
    store = _store(signed)
    active = store["manifests"][store["active_manifest"]]  # type: ignore[index]
    [edited] = [
        a
        for x in active["assertions"]
        if x["label"].startswith("c2pa.actions")
        for a in x["data"]["actions"]
        if a["action"] == "c2pa.edited"
    ]
    assert edited["parameters"]["controlnet"] == named
    assert "denoising_strength" not in edited["parameters"]
    assert report.controlnet == named
    assert f"followed by the ControlNet '{named}'" in report.describe()
    # A restyle names none.
    restyled = read_content_credentials(_restyled(_png(_picture(6)), identity, None))
    assert restyled is not None
    assert restyled.controlnet is None
    assert "ControlNet" not in restyled.describe()


def test_the_infotext_and_json_say_the_denoising_strength(identity: SigningIdentity) -> None:
    signed = _restyled(_png(_picture(3)), identity, None)
    meta = read_output_metadata(signed)
    assert meta is not None
    assert meta.denoising_strength == 0.55
    assert "Denoising strength: 0.55" in a1111_parameters(meta)
    # Text-to-image says nothing of it, as A1111's txt2img does not.
    assert "Denoising" not in a1111_parameters(META)


def test_without_a_source_the_manifest_has_no_ingredient(
    identity: SigningIdentity, tmp_path: Path
) -> None:
    signed = sign_output_png(encode_png(_picture(4), META), META, identity)
    store = _store(signed)
    active = store["manifests"][store["active_manifest"]]  # type: ignore[index]
    assert not active.get("ingredients")
    report = read_content_credentials(signed)
    assert report is not None
    assert report.made_from is None
