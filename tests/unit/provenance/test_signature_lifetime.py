"""Content Credentials that outlive their certificate: a manifest timestamped by an RFC 3161
authority (a real one, on 127.0.0.1: tests/support/tsa.py) still verifies once the signing
certificate has expired; one without a timestamp reads Invalid (signingCredential.expired),
as the issue found with outside tools. And the local certificate itself lives for decades
and is renewed before it runs out."""

from __future__ import annotations

import dataclasses
import datetime
import time
from pathlib import Path

import pytest
from PIL import Image
from tests.support.tsa import time_stamp_authority

from stylebot.provenance.content_credentials import (
    probe_time_stamping,
    read_content_credentials,
    sign_output_png,
)
from stylebot.provenance.metadata import OutputMetadata, encode_png
from stylebot.provenance.signing import (
    CA_FILE,
    RENEW_BEFORE,
    SigningIdentity,
    ensure_signing_identity,
    signing_identity_for,
)

META = OutputMetadata(
    output_id="0123456789ab",
    prompt="a boat",
    negative_prompt="",
    seed=1,
    steps=3,
    guidance=7.5,
    width=64,
    height=64,
    sampler="DDIM",
    base_model="tiny-sd",
    style_name="ink",
    lora_hash=None,
    created_at=datetime.datetime(2026, 11, 22, 12, 0, tzinfo=datetime.UTC),
)
# Long enough to sign twice on a busy machine, short enough to wait out.
SHORT_LIFE = datetime.timedelta(seconds=6)


def _png() -> bytes:
    return encode_png(Image.new("RGB", (64, 64), "teal"), META)


def _wait_until_expired(identity: SigningIdentity) -> None:
    left = identity.certificate.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    time.sleep(max(0.0, left.total_seconds()) + 1.5)


def test_an_expired_certificate_reads_invalid_without_a_timestamp_and_valid_with_one(
    tmp_path: Path,
) -> None:
    identity = ensure_signing_identity(tmp_path / "c2pa", signer_lifetime=SHORT_LIFE)
    with time_stamp_authority() as tsa:
        stamped = sign_output_png(_png(), META, dataclasses.replace(identity, tsa_url=tsa.url))
        plain = sign_output_png(_png(), META, identity)
        assert len(tsa.requests) == 1  # asked while signing, once
        # Both hold while the certificate does.
        anchors = (tmp_path / "c2pa" / CA_FILE).read_bytes() + tsa.ca_pem
        for data in (stamped, plain):
            fresh = read_content_credentials(data, anchors)
            assert fresh is not None
            assert fresh.trusted
        _wait_until_expired(identity)

    expired = read_content_credentials(plain, anchors)
    assert expired is not None
    assert not expired.valid
    assert expired.problems == ("signingCredential.expired",)
    assert expired.signed_at is None
    text = expired.describe()
    assert "INVALID" in text
    assert "certificate has expired" in text
    assert "changed after signing" not in text  # the bytes are intact

    outlived = read_content_credentials(stamped, anchors)
    assert outlived is not None
    assert outlived.trusted, outlived.problems
    assert outlived.signed_at is not None
    signed_at = datetime.datetime.fromisoformat(outlived.signed_at)
    assert signed_at < identity.certificate.not_valid_after_utc
    assert f"timestamped {outlived.signed_at}" in outlived.describe()
    # A timestamp from an authority the reader does not trust vouches for nothing.
    local_only = read_content_credentials(stamped, (tmp_path / "c2pa" / CA_FILE).read_bytes())
    assert local_only is not None
    assert local_only.problems == ("signingCredential.expired",)


def test_the_time_stamping_url_setting_reaches_the_signer(tmp_path: Path) -> None:
    with time_stamp_authority() as tsa:
        identity = signing_identity_for(tmp_path / "c2pa", tsa_url=tsa.url)
        report = read_content_credentials(sign_output_png(_png(), META, identity))
        assert len(tsa.requests) == 1
    assert report is not None
    assert report.signed_at is not None
    # Unset ("" in settings): no timestamp, and no request anywhere.
    assert signing_identity_for(tmp_path / "c2pa", tsa_url="").tsa_url is None


def test_the_probe_gets_a_timestamp_or_says_why_not(tmp_path: Path) -> None:
    with time_stamp_authority() as tsa:
        when = probe_time_stamping(tsa.url, tmp_path / "probe")
        closed = tsa.url
    assert abs(
        datetime.datetime.fromisoformat(when) - datetime.datetime.now(datetime.UTC)
    ) < datetime.timedelta(minutes=5)
    with pytest.raises(ValueError, match="failed"):
        probe_time_stamping(closed, tmp_path / "probe")  # nothing listens there now
    with pytest.raises(ValueError, match="not an http"):
        probe_time_stamping("timestamp.example", tmp_path / "probe")


def test_the_local_certificate_lasts_decades_and_is_renewed_before_it_runs_out(
    tmp_path: Path,
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    made = ensure_signing_identity(tmp_path / "long")
    assert made.certificate.not_valid_after_utc - now > datetime.timedelta(days=20 * 365)

    folder = tmp_path / "ending"
    ending = ensure_signing_identity(folder, signer_lifetime=RENEW_BEFORE / 2)
    ca_before = (folder / CA_FILE).read_bytes()
    renewed = ensure_signing_identity(folder)
    assert renewed.chain_pem != ending.chain_pem
    assert renewed.certificate.not_valid_after_utc - now > datetime.timedelta(days=20 * 365)
    # The same CA issues it, so viewers that trust the CA trust the new certificate.
    assert (folder / CA_FILE).read_bytes() == ca_before
    assert renewed.certificate.issuer == ending.certificate.issuer
    report = read_content_credentials(sign_output_png(_png(), META, renewed), ca_before)
    assert report is not None
    assert report.trusted
    assert ensure_signing_identity(folder).chain_pem == renewed.chain_pem  # renewed once
