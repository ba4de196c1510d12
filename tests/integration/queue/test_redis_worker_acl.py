"""A worker with only the Redis rights `deploy/redis-worker.acl` gives it serves jobs.

The TLS Redis loads the repository's ACL file (the `default` user off), with test
passwords in place of its CHANGE-ME ones. The front end runs in this process as
`stylebot-frontend`; a `stylebot worker` process runs as `stylebot-worker`,
configured only by environment, and serves a training and a generation. Redis's
ACL LOG must then hold no refusal of the worker (a refused write the worker rides
out, such as its presence key, would otherwise pass unseen), and the worker's user
is refused keys and commands outside the file: the ACL is restrictive, not open.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from tests.support.processes import StylebotProcess, child_env, wait_until, worker_host
from tests.support.stack import Inbox
from tests.support.tls_redis import TlsRedis, running_tls_redis

from stylebot.bootstrap import FrontEnd
from stylebot.bot.console.session import make_sample_images
from stylebot.bot.core.commands import (
    ConfirmConsent,
    Imagine,
    IncomingFile,
    TrainStyle,
    UploadImages,
)
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import (
    ConsentRequest,
    ImagesReady,
    JobFinished,
    JobQueued,
    Notification,
)
from stylebot.config import Settings
from stylebot.queue.keys import OLD_DELIVERY_FAILURES_KEY, worker_health_key
from stylebot.redis_replies import list_reply

pytestmark = pytest.mark.slow

ACL_FILE = Path(__file__).resolve().parents[3] / "deploy" / "redis-worker.acl"
ME = Requester("test", "u1", "Ada", chat_id="c1", server_id="s1")
FRONTEND_PASSWORD = secrets.token_hex(16)
WORKER_PASSWORD = secrets.token_hex(16)
STARTUP_S = 150


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    directory = tmp_path_factory.mktemp("acl-redis")
    users = (
        ACL_FILE.read_text()
        .replace("CHANGE-ME-FRONTEND-PASSWORD", FRONTEND_PASSWORD)
        .replace("CHANGE-ME-WORKER-PASSWORD", WORKER_PASSWORD)
    )
    acl = directory / "users.acl"
    acl.write_text(users)
    with running_tls_redis(directory, acl_file=acl) as server:
        yield server


@pytest.fixture
def settings(settings: Settings, tls_redis: TlsRedis) -> Settings:
    files = tls_redis.files
    return settings.replace(
        redis_url=tls_redis.url(user="stylebot-frontend", password=FRONTEND_PASSWORD),
        redis_tls_ca_file=files.ca,
        redis_tls_cert_file=files.client_cert,
        redis_tls_key_file=files.client_key,
    )


def _as_worker(tls_redis: TlsRedis) -> redis.Redis:
    return tls_redis.endpoint(user="stylebot-worker", password=WORKER_PASSWORD).client()


def _worker_refusals(admin: redis.Redis) -> list[dict[str, object]]:
    """Redis's ACL LOG entries about the worker's user: what it was refused."""
    return [
        {name: entry[name] for name in ("reason", "context", "object")}
        for entry in list_reply(admin.acl_log())
        if entry.get("username") == "stylebot-worker"
    ]


async def _next_or_fail(inbox: Inbox, kinds: tuple[type, ...], *why: object) -> Notification:
    try:
        return await inbox.next(kinds, within=STARTUP_S)
    except TimeoutError:
        pytest.fail("\n".join(map(str, ("no reply", *why))))


async def test_a_worker_with_the_minimal_acl_serves_a_training_and_a_generation(
    frontend: FrontEnd,
    inbox: Inbox,
    settings: Settings,
    tls_redis: TlsRedis,
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    files = tls_redis.files
    worker = StylebotProcess.start(
        "worker",
        ["worker"],
        child_env(
            REDIS_URL=tls_redis.url(user="stylebot-worker", password=WORKER_PASSWORD),
            STYLEBOT_REDIS_TLS_CA_FILE=str(files.ca),
            STYLEBOT_REDIS_TLS_CERT_FILE=str(files.client_cert),
            STYLEBOT_REDIS_TLS_KEY_FILE=str(files.client_key),
            STYLEBOT_DATA_DIR=str(worker_host(tmp_path, "gpu-host", settings.data_dir)),
            STYLEBOT_BASE_MODEL=str(tiny_model_dir),
            STYLEBOT_DEVICE="cpu",
        ),
        tmp_path / "worker.log",
    )
    admin = tls_redis.endpoint(user="stylebot-frontend", password=FRONTEND_PASSWORD).client()
    try:
        await wait_until(
            "the worker to check in",
            lambda: bool(admin.keys(worker_health_key("*"))),
            STARTUP_S,
            worker,
        )
        bot = frontend.bot
        images = make_sample_images(tmp_path / "refs", 3)
        upload = tuple(IncomingFile(p.name, p.read_bytes()) for p in images)
        assert isinstance(await bot.handle(UploadImages(ME, upload)), ConsentRequest)
        await bot.handle(ConfirmConsent(ME, "own-work", rights_confirmed=True))
        assert isinstance(await bot.handle(TrainStyle(ME, "warm")), JobQueued)
        trained = await _next_or_fail(
            inbox, (JobFinished,), _worker_refusals(admin), worker.describe()
        )
        assert isinstance(trained.reply, JobFinished), trained.reply
        assert trained.reply.ok, (trained.reply, worker.describe())
        asked = await bot.handle(Imagine(ME, "a lighthouse", style="warm", seed=5))
        assert isinstance(asked, JobQueued), asked
        ready = await _next_or_fail(
            inbox, (ImagesReady, JobFinished), _worker_refusals(admin), worker.describe()
        )
        assert isinstance(ready.reply, ImagesReady), (ready.reply, worker.describe())

        assert _worker_refusals(admin) == [], worker.describe()
    finally:
        worker.stop()
        admin.close()


@pytest.mark.parametrize(
    "command",
    [
        ("SET", "another-app:session", "x"),  # a key of another application
        ("GET", OLD_DELIVERY_FAILURES_KEY),  # a front end's key
        ("KEYS", "*"),
        ("FLUSHALL",),
        ("CONFIG", "GET", "requirepass"),
        ("ACL", "LIST"),
    ],
)
def test_the_worker_user_is_refused_what_the_acl_does_not_give_it(
    command: tuple[str, ...], tls_redis: TlsRedis
) -> None:
    client = _as_worker(tls_redis)
    try:
        assert client.ping()
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)
    finally:
        client.close()
