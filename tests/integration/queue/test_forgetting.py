"""/style delete and /forgetme reach Redis: on the real embedded Redis, through the bot,
nothing of the user's jobs is left in any key or value, nor in the append-only file."""

from __future__ import annotations

import asyncio
import io
import logging
import secrets
from pathlib import Path

import pytest
import redis
from arq.jobs import Job as ArqJob
from tests.support.leftovers import files_containing, redis_keys_containing
from tests.support.root_logging import restore_root_logging  # noqa: F401 (a fixture)
from tests.support.stored_checkpoints import save_checkpoint

from stylebot.bootstrap import FrontEnd
from stylebot.bot.console.session import make_sample_images
from stylebot.bot.core.commands import (
    CancelJob,
    ConfirmConsent,
    DeleteStyle,
    EraseMyData,
    Imagine,
    IncomingFile,
    TrainStyle,
    UploadImages,
)
from stylebot.bot.core.jobs import job_owner
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import JobQueued, TextReply
from stylebot.logs import configure_logging
from stylebot.queue.connection import deserialize_job
from stylebot.queue.events import FRONTEND_GROUP, EventPublisher
from stylebot.queue.keys import (
    EVENTS_STREAM,
    QUEUE_NAME,
    arq_in_progress_key,
    arq_job_key,
    arq_result_key,
    job_end_key,
)
from stylebot.queue.payloads import JobEvent, TrainingPreview, TrainResult
from stylebot.queue.recovery import CheckpointStore, remember_end

pytestmark = pytest.mark.slow


def sync_client(frontend: FrontEnd) -> redis.Redis:
    return redis.Redis.from_url(frontend.redis_url)


async def wait_for_aof_rewrite(client: redis.Redis) -> None:
    async with asyncio.timeout(30):
        while True:
            info = client.info("persistence")
            if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
                assert info["aof_last_bgrewrite_status"] == "ok", info
                return
            await asyncio.sleep(0.05)


async def test_erasure_leaves_nothing_of_the_users_jobs_in_redis_or_its_file(
    frontend: FrontEnd, tmp_path: Path
) -> None:
    token = secrets.token_hex(6)
    me = Requester("test", f"user-{token}", "Ada", chat_id="c1", server_id="s1")
    bob = Requester("test", "bob", "Bob", chat_id="c2", server_id="s1")
    prompt, style = f"a lighthouse {token} at dawn", f"ink{token}"
    bot, redis_async = frontend.bot, frontend.queue.redis
    # Rewrites at most every second here: the erasure's comes a second after the deletion's.
    frontend.queue.disk_rewrites.min_interval_s = 1.0
    client = sync_client(frontend)
    # Uncompressed snapshots, so that a search of the file's bytes finds what is there.
    client.config_set("rdbcompression", "no")

    files = tuple(
        IncomingFile(p.name, p.read_bytes()) for p in make_sample_images(tmp_path / "refs", 2)
    )
    await bot.handle(UploadImages(me, files))
    await bot.handle(ConfirmConsent(me, "own-work", rights_confirmed=True))
    train = await bot.handle(TrainStyle(me, style))
    assert isinstance(train, JobQueued), train
    # What a worker leaves while it trains: a preview event (its prompt is the trigger),
    # a checkpoint, the finished result; then the front end records the style.
    trigger = f"sbt {style} style"
    preview = TrainingPreview("o1", "", trigger, 1, 4, 7.5, 64, 64)
    events = EventPublisher(redis_async)
    await events.publish(JobEvent(train.job_id, "train", "progress", step=1, preview=preview))
    await save_checkpoint(
        CheckpointStore(redis_async, frontend.blobs), train.job_id, b"state", 1, tmp_path
    )
    lora = await frontend.blobs.put(f"weights {token}".encode())
    result = TrainResult(lora_key=lora, steps=4, final_loss=0.1, seconds=1.0)
    trained = JobEvent(train.job_id, "train", "finished", result=result.to_dict())
    await remember_end(redis_async, trained)
    await bot.handle_event(trained)
    queued = await bot.handle(Imagine(me, prompt, style=style, seed=1))
    assert isinstance(queued, JobQueued), queued
    await events.publish(JobEvent(queued.job_id, "generate", "started", total=4))
    others = await bot.handle(Imagine(bob, "a harbour", seed=2))
    assert isinstance(others, JobQueued)

    # The front end has read the events but not acknowledged them (it is down, say).
    assert len(await frontend.events.read(block_ms=100)) == 2
    user = await frontend.uow.users.find_user("test", me.user_id)
    assert user is not None
    needles = [token.encode(), job_owner(user).encode()]
    before = redis_keys_containing(client, needles)
    # The search sees them: payloads, the event, the owner's turns.
    assert arq_job_key(queued.job_id).encode() in before
    assert b"stylebot:events" in before
    assert b"stylebot:turns:generate:owners" in before
    job_records = [f"stylebot:{kind}:{train.job_id}" for kind in ("train-result", "checkpoint")]
    assert client.exists(*job_records) == 2

    assert isinstance(await bot.handle(DeleteStyle(me, style)), TextReply)
    assert isinstance(await bot.handle(EraseMyData(me, confirmed=True)), TextReply)

    assert redis_keys_containing(client, needles) == {}
    assert client.exists(*job_records) == 0
    assert client.xpending(EVENTS_STREAM, FRONTEND_GROUP)["pending"] == 0
    # Bob's job is untouched.
    assert client.exists(arq_job_key(others.job_id))
    assert client.zscore(QUEUE_NAME, others.job_id) is not None
    # The append-only file was rewritten after the erasure: it holds none of it either.
    rewrites = client.info("commandstats")["cmdstat_bgrewriteaof"]["calls"]
    await asyncio.sleep(1.5)  # the interval since the deletion's rewrite
    assert client.info("commandstats")["cmdstat_bgrewriteaof"]["calls"] == rewrites + 1
    await wait_for_aof_rewrite(client)
    aof = frontend.settings.data_dir / "redis" / "appendonly.aof"
    assert aof.read_bytes().startswith(b"REDIS")  # a rewrite's snapshot preamble
    assert files_containing(aof.parent, needles) == {}
    client.close()


@pytest.mark.usefixtures("restore_root_logging")
async def test_a_workers_results_and_logs_hold_no_job_arguments(frontend: FrontEnd) -> None:
    """arq keeps a job's result with its arguments, and logs them when it starts the job:
    the prompt would outlive any erasure there. A real worker, on a job it skips
    (cancelled), so no model is needed."""
    out = io.StringIO()
    configure_logging(logging.DEBUG, "json", out)
    token = secrets.token_hex(6)
    me = Requester("test", "u1", "Ada", chat_id="c1", server_id="s1")
    queued = await frontend.bot.handle(Imagine(me, f"{token} lighthouse", seed=1))
    assert isinstance(queued, JobQueued)
    await frontend.bot.handle(CancelJob(me))

    from stylebot.queue.worker import build_worker

    arq_worker = build_worker(
        frontend.settings,
        frontend.redis_url,
        burst=True,
        handle_signals=False,
        engine=object(),  # never touched: the job was cancelled
    )
    async with asyncio.timeout(30):
        await arq_worker.async_run()
    await arq_worker.close()

    arq_job = ArqJob(
        queued.job_id, frontend.queue.redis, _queue_name=QUEUE_NAME, _deserializer=deserialize_job
    )
    assert await arq_job.result(timeout=5) == {"cancelled": True}
    client = sync_client(frontend)
    stored = client.get(arq_result_key(queued.job_id))
    client.close()
    assert stored is not None
    assert token.encode() not in stored
    logged = out.getvalue()
    assert queued.job_id in logged  # arq's lines about the job are there...
    assert token not in logged  # ...without its arguments


async def test_a_job_forgotten_while_it_runs_leaves_no_result_when_it_ends(
    frontend: FrontEnd, worker: None
) -> None:
    """Its owner erased it while a worker made its images: the worker tells nothing and
    arq's record of the job holds no result (its images' keys, a caption job's captions)."""
    me = Requester("test", "u-forgotten", "Ada", chat_id="c1")
    queued = await frontend.bot.handle(
        Imagine(me, "a slow harbour", steps=12, width=256, height=256, seed=3)
    )
    assert isinstance(queued, JobQueued), queued
    job_id = queued.job_id
    redis_async = frontend.queue.redis
    for _ in range(6000):  # 2 minutes
        if await redis_async.exists(arq_in_progress_key(job_id)):
            break
        await asyncio.sleep(0.02)
    await frontend.queue.forget_jobs([job_id])
    for _ in range(2400):  # the run ends and arq records it
        if not await redis_async.exists(arq_in_progress_key(job_id)):
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the run never ended")
    assert await redis_async.exists(arq_result_key(job_id), job_end_key(job_id)) == 0
    events = [JobEvent.from_json(f[b"event"]) for _i, f in await redis_async.xrange(EVENTS_STREAM)]
    assert [e.kind for e in events if e.job_id == job_id and e.kind == "finished"] == []
