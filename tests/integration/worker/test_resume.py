"""Nothing lost: a worker SIGKILLed mid-training is replaced and the run resumes.

Real worker processes (`python -m stylebot worker`), real Redis and blob store:
the first worker is killed once it has written a checkpoint, a second worker
takes the job over when the first one's lease lapses, continues from the
checkpoint, and the front end hears of exactly one finished training. On an
SD 1.5 base (a UNet LoRA) and on a FLUX.1 one (a transformer LoRA trained by
flow matching).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from arq.jobs import Job as ArqJob
from tests.support.stack import Inbox

from stylebot.bootstrap import FrontEnd
from stylebot.bot.console.session import make_sample_images
from stylebot.bot.core.commands import (
    ConfirmConsent,
    IncomingFile,
    StyleInfo,
    TrainStyle,
    UploadImages,
)
from stylebot.bot.core.model import Requester, StyleStatus
from stylebot.bot.core.replies import JobFinished, JobQueued, TextReply
from stylebot.config import Settings
from stylebot.queue.connection import deserialize_job
from stylebot.queue.keys import EVENTS_STREAM, QUEUE_NAME, checkpoint_key
from stylebot.queue.local_worker import settings_env
from stylebot.queue.payloads import JobEvent

pytestmark = pytest.mark.slow

ME = Requester("test", "u1", "Ada", chat_id="c1", server_id="s1")
STEPS = 40
CHECKPOINT_EVERY = 10
LEASE_S = 1.5
BASE_MODELS = {"sd15": "tiny_model_dir", "flux": "tiny_flux_model_dir"}


@pytest.fixture(params=sorted(BASE_MODELS))
def settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The stack's settings on each family's tiny base model."""
    model_dir: Path = request.getfixturevalue(BASE_MODELS[request.param])
    return settings.replace(base_model=str(model_dir))


def _start_worker(frontend: FrontEnd, log: Path) -> subprocess.Popen[bytes]:
    # A short lease, so the killed worker's job is retried within the test.
    env = settings_env(frontend.settings.replace(job_lease_s=LEASE_S), frontend.redis_url)
    env["OMP_NUM_THREADS"] = "1"  # two workers share two cores in this test
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "stylebot", "worker"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _job_events(frontend: FrontEnd, job_id: str) -> list[JobEvent]:
    entries = await frontend.queue.redis.xrange(EVENTS_STREAM)
    events = [JobEvent.from_json(fields[b"event"]) for _id, fields in entries]
    return [e for e in events if e.job_id == job_id]


async def test_a_killed_worker_s_training_resumes_from_its_checkpoint_on_another_worker(
    frontend: FrontEnd, inbox: Inbox, tmp_path: Path
) -> None:
    bot = frontend.bot
    bot.policy = dataclasses.replace(
        bot.policy,
        train=dataclasses.replace(
            bot.policy.train, steps=STEPS, checkpoint_every_steps=CHECKPOINT_EVERY
        ),
    )
    files = tuple(
        IncomingFile(p.name, p.read_bytes()) for p in make_sample_images(tmp_path / "refs", 2)
    )
    await bot.handle(UploadImages(ME, files))
    await bot.handle(ConfirmConsent(ME, "own-work", rights_confirmed=True))
    queued = await bot.handle(TrainStyle(ME, "sturdy"))
    assert isinstance(queued, JobQueued)
    redis = frontend.queue.redis

    # Both start now (a worker takes seconds to import torch); whichever takes
    # the job is killed, and the other must not touch the job before that.
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    workers = [_start_worker(frontend, log) for log in logs]
    try:
        async with asyncio.timeout(120):
            while await redis.get(checkpoint_key(queued.job_id)) is None:
                assert all(w.poll() is None for w in workers), logs[0].read_text()
                await asyncio.sleep(0.02)
        took_it = [queued.job_id in log.read_text() for log in logs]
        assert sorted(took_it) == [False, True], "exactly one worker runs the job"
        killed = took_it.index(True)
        workers[killed].send_signal(signal.SIGKILL)
        workers[killed].wait()
        record = await redis.get(checkpoint_key(queued.job_id))
        assert record is not None
        saved_step = json.loads(record)["step"]
        assert CHECKPOINT_EVERY <= saved_step < STEPS

        done = await inbox.next((JobFinished,), within=120)
        assert isinstance(done.reply, JobFinished)
        assert done.reply.ok, done.reply.text
        arq_job = ArqJob(
            queued.job_id, redis, _queue_name=QUEUE_NAME, _deserializer=deserialize_job
        )
        outcome = await arq_job.result(timeout=30, poll_delay=0.1)
        assert outcome["steps"] == STEPS
        survivor_log = logs[1 - killed].read_text()
        assert "try=2" in survivor_log
    finally:
        for process in workers:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)

    events = await _job_events(frontend, queued.job_id)
    starts = [e for e in events if e.kind == "started"]
    assert [e.step for e in starts] == [0, saved_step]
    # The second attempt's progress picks up right after the checkpoint...
    after_restart = events[events.index(starts[1]) :]
    steps = [e.step for e in after_restart if e.kind == "progress"]
    assert steps[0] == saved_step + 1
    assert steps == sorted(steps)
    assert steps[-1] == STEPS
    # ...and the style is trained once: one finished event, with all the steps.
    finished = [e for e in events if e.kind == "finished"]
    assert len(finished) == 1
    assert finished[0].train_result().steps == STEPS
    # The finished run leaves no checkpoint behind.
    assert await redis.get(checkpoint_key(queued.job_id)) is None

    user = await frontend.uow.users.get_or_create_user("test", "u1", "Ada")
    style = await frontend.uow.styles.find_style(user.id, "sturdy")
    assert style is not None
    assert style.status is StyleStatus.READY
    # One of the two images was held out: /style info shows its validation loss
    # against the base model's, the curve carried across the restart.
    info = await bot.handle(StyleInfo(ME, "sturdy"))
    assert isinstance(info, TextReply)
    assert "1 image(s) held out for validation" in info.text
    assert "validation: Held-out images: validation loss" in info.text
    curve = await frontend.uow.styles.style_validation(style.id)
    checkpoint_steps = range(CHECKPOINT_EVERY, STEPS + 1, CHECKPOINT_EVERY)
    assert [point.step for point in curve] == list(checkpoint_steps)
