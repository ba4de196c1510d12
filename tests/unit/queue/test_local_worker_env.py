"""The worker child process gets the settings it runs with, and not the chat front ends'
secrets: it talks to Redis only."""

from __future__ import annotations

from pathlib import Path

import pytest

from stylebot.config import load_settings
from stylebot.queue.local_worker import settings_env

DISCORD = "discord-token-Zq81x"
TELEGRAM = "123456:telegram-token-Kp4"


def test_the_workers_environment_has_no_chat_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given both ways an operator gives them: unprefixed, and in the settings.
    monkeypatch.setenv("DISCORD_TOKEN", DISCORD)
    monkeypatch.setenv("TELEGRAM_TOKEN", TELEGRAM)
    settings = load_settings(
        environ={
            "DISCORD_TOKEN": DISCORD,
            "STYLEBOT_TELEGRAM_TOKEN": TELEGRAM,
            "STYLEBOT_DATA_DIR": str(tmp_path),
            "STYLEBOT_TRAIN_STEPS": "7",
        }
    )
    assert (settings.discord_token, settings.telegram_token) == (DISCORD, TELEGRAM)

    env = settings_env(settings, "redis://127.0.0.1:6399/0")

    assert not [k for k, v in env.items() if DISCORD in v or TELEGRAM in v]
    # What the worker needs still arrives, and loads as the same settings, less tokens.
    child = load_settings(environ=env)
    assert child.train_steps == 7
    assert child.data_dir == tmp_path.resolve()
    assert child.redis_url == "redis://127.0.0.1:6399/0"
    assert (child.discord_token, child.telegram_token) == (None, None)
