"""`redact`: each credential shape, and the settings' own values in their spellings
(its use on log lines is tested in tests/integration/ops/test_logs.py)."""

from __future__ import annotations

import pytest

from stylebot.config import load_settings
from stylebot.redaction import redact, register_secrets, secrets_of


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cannot reach redis://:s3cret-pw@db:6379/0", "cannot reach redis://:***@db:6379/0"),
        ("redis://bot-user:acl-pw-1@db:6379", "redis://bot-user:***@db:6379"),
        ("rediss://u:p%40ss@db/1", "rediss://u:***@db/1"),
        (
            "POST https://api.telegram.org/bot123456789:AAEabcdefghijklmnopqrstuvwxyz012345/getMe",
            "POST https://api.telegram.org/bot***/getMe",
        ),
        ("token 123456789:AAEabcdefghijklmnopqrstuvwxyz012345 refused", "token *** refused"),
        (
            "Discord MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GhIjKl.abcdefghijklmnopqrstuvwxyz0123456789AB bad",
            "Discord *** bad",
        ),
        ("redis://db:6379/0 and unix:///data/redis/redis.sock", None),
    ],
)
def test_credential_shapes_are_redacted_and_nothing_else(text: str, expected: str | None) -> None:
    assert redact(text) == (text if expected is None else expected)


def test_settings_secrets_are_redacted_wherever_they_appear() -> None:
    settings = load_settings(
        environ={
            "TELEGRAM_TOKEN": "short:tok-plain",
            "REDIS_URL": "redis://user:pa%2Fss-unique@db:6379/0",
        }
    )
    register_secrets(secrets_of(settings))
    assert "tok-plain" not in redact("the token was short:tok-plain")
    assert "pa/ss-unique" not in redact("AUTH user pa/ss-unique")  # decoded
    assert "pa%2Fss-unique" not in redact("dsn pa%2Fss-unique")  # as written
