"""What the bot's own child processes (the local worker, the embedded Redis) inherit
of its environment: never the chat front ends' tokens, which neither needs.

A child's environment is readable by whatever runs as its user (/proc/PID/environ) and
ends up in crash reports; a secret there outlives the front end that needed it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from stylebot.config import ENV_PREFIX

#: Settings only the chat front ends use; given with or without the prefix.
FRONT_END_SECRETS = ("discord_token", "telegram_token")


def inherited_environment(
    environ: Mapping[str, str] | None = None, *, keep_settings: bool = False
) -> dict[str, str]:
    """`environ` (default: this process's) less the front ends' secrets; less every
    STYLEBOT_ setting and REDIS_URL too unless `keep_settings`."""
    source = os.environ if environ is None else environ
    secrets = {name.upper() for name in FRONT_END_SECRETS}
    secrets |= {ENV_PREFIX + name for name in secrets}
    return {
        key: value
        for key, value in source.items()
        if key not in secrets
        and (keep_settings or not (key.startswith(ENV_PREFIX) or key == "REDIS_URL"))
    }
