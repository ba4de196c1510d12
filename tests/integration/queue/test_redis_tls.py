"""Redis over TLS: a real redis-server with a throwaway CA, mutual TLS, host names checked.

The front end and a worker serve a generation through a `rediss://` REDIS_URL; every
client the code makes (the start-up check, doctor, status, metrics) reaches the same
server with the same settings; and a client that trusts another CA, names another
host, brings no certificate or speaks the wrong protocol is refused, with a line
saying which.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.stack import Inbox
from tests.support.tls_redis import TlsRedis, running_tls_redis

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.commands import Imagine
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import ImagesReady, JobFinished, JobQueued
from stylebot.config import Settings
from stylebot.doctor.host import check_redis
from stylebot.doctor.results import Level
from stylebot.metrics import build_registry
from stylebot.queue.redis_endpoint import RedisEndpoint
from stylebot.startup_checks import StartupError, check_redis_reachable
from stylebot.terminal_status import redis_for_status

pytestmark = pytest.mark.slow

ME = Requester("test", "u1", "Ada", chat_id="c1", server_id="s1")


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    with running_tls_redis(tmp_path_factory.mktemp("tls-redis")) as server:
        yield server


@pytest.fixture
def settings(settings: Settings, tls_redis: TlsRedis) -> Settings:
    """The stack's settings on the TLS Redis, as an operator sets them."""
    files = tls_redis.files
    return settings.replace(
        redis_url=tls_redis.url(),
        redis_tls_ca_file=files.ca,
        redis_tls_cert_file=files.client_cert,
        redis_tls_key_file=files.client_key,
    )


async def test_the_front_end_and_a_worker_serve_a_generation_over_tls(
    frontend: FrontEnd, inbox: Inbox, worker: None, settings: Settings, tls_redis: TlsRedis
) -> None:
    assert frontend.redis_url.startswith("rediss://localhost:")
    queued = await frontend.bot.handle(Imagine(ME, "a lighthouse over tls", seed=3))
    assert isinstance(queued, JobQueued), queued
    ready = await inbox.next((ImagesReady, JobFinished))
    assert isinstance(ready.reply, ImagesReady), ready.reply
    assert ready.reply.images[0].data.startswith(b"\x89PNG")

    # Every other client of the code reaches it with the same settings.
    check_redis_reachable(RedisEndpoint.from_settings(settings))
    doctor = check_redis(settings)
    assert doctor.level is Level.OK, doctor
    assert "over TLS" in doctor.found
    status = redis_for_status(settings)
    try:
        assert status.ping()
    finally:
        status.close()
    registry, queue = build_registry(RedisEndpoint.from_settings(settings), "worker")
    try:
        assert registry.get_sample_value("stylebot_redis_up") == 1
    finally:
        queue.close()


def _endpoint(tls_redis: TlsRedis, **changes: Any) -> RedisEndpoint:
    good = tls_redis.endpoint()
    values = {
        "url": good.url,
        "ca_file": good.ca_file,
        "cert_file": good.cert_file,
        "key_file": good.key_file,
        **changes,
    }
    return RedisEndpoint(**values)


REFUSALS: dict[str, tuple[dict[str, Any], str]] = {
    "another CA": (
        {"ca_file": "stranger"},
        "is not trusted (self-signed certificate in certificate chain): set "
        "STYLEBOT_REDIS_TLS_CA_FILE",
    ),
    "another host name": ({"url": "by-ip"}, "is not for the host name '127.0.0.1'"),
    "no client certificate": (
        {"cert_file": None, "key_file": None},
        "wants a client certificate (mutual TLS): set STYLEBOT_REDIS_TLS_CERT_FILE",
    ),
    "plain text to the TLS port": ({"url": "plain-to-tls"}, "if it wants TLS, use rediss://"),
    "TLS to a plain-text port": ({"url": "tls-to-plain"}, "does not answer TLS"),
    "a missing CA file": ({"ca_file": "missing"}, "is not a readable file"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_client_that_cannot_check_the_server_is_refused_and_told_why(
    case: str, tls_redis: TlsRedis, tmp_path: Path
) -> None:
    changes, expected = REFUSALS[case]
    stand_ins: dict[str, Any] = {
        "stranger": tls_redis.files.stranger_ca,
        "missing": tmp_path / "no-such-ca.pem",
        "by-ip": tls_redis.url(host="127.0.0.1"),
        "plain-to-tls": f"redis://localhost:{tls_redis.tls_port}/0",
        "tls-to-plain": f"rediss://localhost:{tls_redis.plain_port}/0",
    }
    endpoint = _endpoint(
        tls_redis, **{name: stand_ins.get(value, value) for name, value in changes.items()}
    )
    with pytest.raises(StartupError) as refused:
        check_redis_reachable(endpoint)
    assert expected in str(refused.value)

    # doctor says the same, from the settings an operator would have written.
    settings = Settings(
        data_dir=tmp_path,
        redis_url=endpoint.url,
        redis_tls_ca_file=endpoint.ca_file,
        redis_tls_cert_file=endpoint.cert_file,
        redis_tls_key_file=endpoint.key_file,
    )
    doctor = check_redis(settings)
    assert doctor.level is Level.FAIL
    assert expected in doctor.found
