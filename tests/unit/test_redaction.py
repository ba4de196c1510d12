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
        # A password with a '/' (not percent-encoded): the whole of it goes.
        ("redis://:pa/ss0rdXYZ@host:6379", "redis://:***@host:6379"),
        # Credentials in the query string, as redis-py and many services take them.
        ("redis://127.0.0.1:1/0?password=hunter2secretQ", "redis://127.0.0.1:1/0?password=***"),
        (
            "https://tsa.example/ts?api_key=k3y-xyz&profile=a&Token=t0k",
            "https://tsa.example/ts?api_key=***&profile=a&Token=***",
        ),
        ("redis://db:6379/0 and unix:///data/redis/redis.sock", None),
        ("https://example.com/a@b and http://host:8080/x", None),
    ],
)
def test_credential_shapes_are_redacted_and_nothing_else(text: str, expected: str | None) -> None:
    assert redact(text) == (text if expected is None else expected)


def test_settings_secrets_are_redacted_wherever_they_appear() -> None:
    settings = load_settings(
        environ={
            "TELEGRAM_TOKEN": "short:tok-plain",
            "REDIS_URL": "redis://user:pa%2Fss-unique@db:6379/0",
            "STYLEBOT_S3_ACCESS_KEY_ID": "AKIAEXAMPLE",
            "STYLEBOT_S3_SECRET_ACCESS_KEY": "s3-secret-unique",
        }
    )
    register_secrets(secrets_of(settings))
    assert "s3-secret-unique" not in redact("signing with s3-secret-unique")
    assert "tok-plain" not in redact("the token was short:tok-plain")
    assert "pa/ss-unique" not in redact("AUTH user pa/ss-unique")  # decoded
    assert "pa%2Fss-unique" not in redact("dsn pa%2Fss-unique")  # as written


def test_credentials_in_a_query_string_and_the_tsa_url_are_known_secrets() -> None:
    settings = load_settings(
        environ={
            "REDIS_URL": "redis://db:6379/0?password=q-pass-unique",
            "STYLEBOT_C2PA_TSA_URL": "https://tsa.example/?token=tsa-token-unique",
        }
    )
    register_secrets(secrets_of(settings))
    assert "q-pass-unique" not in redact("AUTH q-pass-unique")
    assert "tsa-token-unique" not in redact("sent tsa-token-unique")
