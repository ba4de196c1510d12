"""doctor's signing check: the operator's certificate, the local CA, or a mistake."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from tests.support.tsa import time_stamp_authority

from stylebot.config import Settings, load_settings
from stylebot.doctor.signing import check_signature_lifetime, check_signing_certificate
from stylebot.provenance.signing import CHAIN_FILE, KEY_FILE, ensure_signing_identity
from stylebot.setting_rules import SettingsError


def test_each_signing_set_up_gets_its_verdict(tmp_path: Path) -> None:
    ensure_signing_identity(tmp_path / "ours")
    ensure_signing_identity(tmp_path / "other")
    chain, key = tmp_path / "ours" / CHAIN_FILE, tmp_path / "ours" / KEY_FILE

    def check(**values: object) -> tuple[str, str]:
        settings = load_settings(environ={}, data_dir=tmp_path / "data", **values)
        result = check_signing_certificate(settings)
        return str(result.level.value), result.found

    level, detail = check()
    assert level == "WARN"
    assert "first start" in detail
    assert not (tmp_path / "data").exists()  # doctor only reads

    assert check(c2pa_cert_chain=chain, c2pa_private_key=key)[0] == "OK"
    # Only one of the pair: the settings refuse it at start (exit 2) before doctor runs;
    # doctor's own check still fails it for Settings built otherwise.
    with pytest.raises(SettingsError, match="must be set together with"):
        check(c2pa_cert_chain=chain)
    one_sided = Settings(data_dir=tmp_path / "data", c2pa_cert_chain=chain)
    assert check_signing_certificate(one_sided).level.value == "FAIL"
    mismatched = check(c2pa_cert_chain=chain, c2pa_private_key=tmp_path / "other" / KEY_FILE)
    assert mismatched[0] == "FAIL"

    ensure_signing_identity(tmp_path / "data" / "c2pa")
    level, detail = check()
    assert level == "WARN"
    assert "local CA" in detail


def test_signature_lifetime_asks_the_time_stamping_authority_and_watches_the_expiry(
    tmp_path: Path,
) -> None:
    def check(**values: object) -> tuple[str, str]:
        settings = load_settings(environ={}, data_dir=tmp_path / "data", **values)
        result = check_signature_lifetime(settings)
        return str(result.level.value), result.found

    level, detail = check()
    assert (level, "no time-stamping authority" in detail) == ("WARN", True)
    assert not (tmp_path / "data").exists()  # doctor only reads

    local = tmp_path / "data" / "c2pa"
    ensure_signing_identity(local)
    level, detail = check()
    assert level == "WARN"
    assert "reads Invalid once the signing certificate expires" in detail

    with time_stamp_authority() as tsa:
        level, detail = check(c2pa_tsa_url=tsa.url)
        assert len(tsa.requests) == 1  # a real request, as signing makes
        closed = tsa.url
    assert level == "OK"
    assert f"timestamped by {tsa.url}" in detail
    assert check(c2pa_tsa_url=closed)[0] == "FAIL"  # nobody answers there any more

    # An operator's certificate with 30 days left: warned (90 days ahead).
    ending = tmp_path / "ending"
    ensure_signing_identity(ending, signer_lifetime=timedelta(days=30))
    level, detail = check(c2pa_cert_chain=ending / CHAIN_FILE, c2pa_private_key=ending / KEY_FILE)
    assert level == "WARN"
    assert "expires on" in detail
    assert "in 29 days" in detail or "in 30 days" in detail

    # Expired: new manifests would read Invalid.
    gone = tmp_path / "gone"
    ensure_signing_identity(gone, signer_lifetime=timedelta(seconds=1))
    time.sleep(1.5)
    level, detail = check(c2pa_cert_chain=gone / CHAIN_FILE, c2pa_private_key=gone / KEY_FILE)
    assert level == "FAIL"
    assert "expired on" in detail
