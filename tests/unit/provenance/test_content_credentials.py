"""C2PA manifests on outputs: signed offline with a local CA, read back, and tamper-evident."""

from __future__ import annotations

import io
import stat
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from stylebot.provenance.content_credentials import read_content_credentials, sign_output_png
from stylebot.provenance.metadata import (
    TRAINED_ALGORITHMIC_MEDIA,
    OutputMetadata,
    encode_png,
    read_output_metadata,
)
from stylebot.provenance.signing import (
    CA_FILE,
    CHAIN_FILE,
    KEY_FILE,
    ensure_signing_identity,
    load_signing_identity,
)
from stylebot.provenance.watermark import embed_watermark, read_watermark

OUTPUT_ID = "0123456789ab"
META = OutputMetadata(
    output_id=OUTPUT_ID,
    prompt="a boat",
    negative_prompt="",
    seed=1,
    steps=3,
    guidance=7.5,
    width=512,
    height=512,
    sampler="DDIM",
    base_model="tiny-sd",
    style_name="ink",
    lora_hash=None,
    created_at=datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
)


@pytest.fixture(scope="module")
def signing_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("c2pa")
    ensure_signing_identity(directory)
    return directory


@pytest.fixture(scope="module")
def signed(signing_dir: Path) -> bytes:
    coarse = np.random.default_rng(3).integers(0, 256, (17, 17, 3), dtype=np.uint8)
    picture = Image.fromarray(coarse).resize((512, 512), Image.Resampling.BICUBIC)
    png = encode_png(embed_watermark(picture, OUTPUT_ID), META)
    return sign_output_png(png, META, ensure_signing_identity(signing_dir))


def test_a_signed_output_says_created_by_a_trained_model_with_style_model_and_watermark(
    signed: bytes,
) -> None:
    report = read_content_credentials(signed)
    assert report is not None
    assert report.valid
    assert not report.trusted  # the local CA is on no trust list by default
    assert report.digital_source_type == TRAINED_ALGORITHMIC_MEDIA
    assert (report.style, report.base_model) == ("ink", "tiny-sd")
    assert report.watermark_id == OUTPUT_ID
    assert report.signer == "stylebot operator"
    assert "valid" in report.describe()


def signed_naming(algorithm: str, signing_dir: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """An output signed with its soft binding named ``algorithm``."""
    from stylebot.provenance import content_credentials

    monkeypatch.setattr(content_credentials, "SOFT_BINDING_ALG", algorithm)
    picture = Image.fromarray(np.full((256, 256, 3), 90, np.uint8))
    png = encode_png(embed_watermark(picture, OUTPUT_ID), META)
    signed = sign_output_png(png, META, ensure_signing_identity(signing_dir))
    monkeypatch.undo()
    return signed


@pytest.mark.parametrize(
    ("algorithm", "watermark_id"),
    [
        # Until version 4 of the mark, manifests named the algorithm so.
        ("org.stylebot.watermark.dwtdctsvd-rs.2", OUTPUT_ID),
        # Another system's soft binding is not ours to read.
        ("com.example.other-mark.1", None),
    ],
)
def test_a_soft_binding_is_read_under_our_names_only(
    algorithm: str, watermark_id: str | None, signing_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = read_content_credentials(signed_naming(algorithm, signing_dir, monkeypatch))
    assert report is not None
    assert report.watermark_id == watermark_id


def test_the_operators_ca_as_trust_anchor_makes_it_trusted(
    signed: bytes, signing_dir: Path
) -> None:
    report = read_content_credentials(signed, (signing_dir / CA_FILE).read_bytes())
    assert report is not None
    assert report.trusted
    assert "trusted signer" in report.describe()


def test_a_signers_name_cannot_forge_report_lines_or_carry_markup(tmp_path: Path) -> None:
    """Anyone can sign a picture with a certificate of their own naming anything: the
    report quotes it on its own line, without mention or markup syntax."""
    forged = "<b>x</b>\nMade with stylebot <@1234>"
    png = encode_png(Image.new("RGB", (64, 64)), META)
    signed = sign_output_png(png, META, ensure_signing_identity(tmp_path, forged))
    report = read_content_credentials(signed)
    assert report is not None
    assert report.signer == forged
    line = report.describe()
    assert "\n" not in line
    assert "<" not in line
    assert ">" not in line
    assert "signed by '\u2039b\u203ax\u2039/b\u203a Made with stylebot \u2039@1234\u203a'" in line


def test_signing_keeps_the_pixels_watermark_and_png_metadata(signed: bytes) -> None:
    assert read_watermark(Image.open(io.BytesIO(signed))) == OUTPUT_ID
    assert read_output_metadata(signed) == META


def test_any_changed_byte_makes_the_manifest_invalid(signed: bytes) -> None:
    for offset in (100, len(signed) // 2, len(signed) - 200):
        damaged = bytearray(signed)
        damaged[offset] ^= 0x01
        report = read_content_credentials(bytes(damaged))
        # A byte inside the manifest may make it unreadable: that is not "valid" either.
        assert report is None or not report.valid
        if report is not None:
            assert "INVALID" in report.describe()


def test_a_re_encoded_copy_loses_the_manifest_but_keeps_the_watermark(signed: bytes) -> None:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(signed)).save(buffer, "JPEG", quality=85)
    assert read_content_credentials(buffer.getvalue()) is None
    assert read_watermark(Image.open(io.BytesIO(buffer.getvalue()))) == OUTPUT_ID


def test_files_without_a_manifest_or_not_images_give_none() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, "PNG")
    assert read_content_credentials(buffer.getvalue()) is None
    assert read_content_credentials(b"%PDF-1.7 not an image") is None
    assert read_content_credentials(b"") is None


def test_the_local_identity_is_made_once_with_a_private_key_file(tmp_path: Path) -> None:
    first = ensure_signing_identity(tmp_path / "id")
    again = ensure_signing_identity(tmp_path / "id")
    assert first.chain_pem == again.chain_pem
    assert first.generated_locally
    mode = stat.S_IMODE((tmp_path / "id" / KEY_FILE).stat().st_mode)
    assert mode == 0o600
    assert "stylebot signer" in first.subject


def test_an_operators_own_chain_is_loaded_and_a_wrong_key_is_refused(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    other = tmp_path / "other"
    ensure_signing_identity(mine, organisation="Example Art Club")
    ensure_signing_identity(other)
    identity = load_signing_identity(mine / CHAIN_FILE, mine / KEY_FILE)
    assert not identity.generated_locally
    assert "Example Art Club" in identity.subject
    with pytest.raises(ValueError, match="is not the key"):
        load_signing_identity(mine / CHAIN_FILE, other / KEY_FILE)


def test_a_key_of_another_type_than_the_certificates_is_refused_as_not_its_key(
    tmp_path: Path,
) -> None:
    ensure_signing_identity(tmp_path / "mine")  # an EC certificate
    ed25519_key = tmp_path / "ed25519.pem"
    ed25519_key.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ValueError, match="is not the key"):
        load_signing_identity(tmp_path / "mine" / CHAIN_FILE, ed25519_key)


def test_finish_output_png_signs_only_with_an_identity(tmp_path: Path) -> None:
    from stylebot.provenance.content_credentials import finish_output_png
    from stylebot.provenance.signing import signing_identity_for

    picture = Image.new("RGB", (64, 64), "navy")
    plain = finish_output_png(picture, META, None)
    assert read_content_credentials(plain) is None
    assert read_output_metadata(plain) == META
    identity = signing_identity_for(tmp_path / "c2pa")
    signed = finish_output_png(picture, META, identity)
    report = read_content_credentials(signed)
    assert report is not None
    assert report.valid
    with pytest.raises(ValueError, match="both"):
        signing_identity_for(tmp_path / "c2pa", chain_path=tmp_path / "chain.pem")
