"""doctor's signing check: the operator's certificate, the local CA, or a mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from stylebot.config import Settings, SettingsError, load_settings
from stylebot.doctor import check_signing_certificate
from stylebot.provenance.signing import CHAIN_FILE, KEY_FILE, ensure_signing_identity


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
