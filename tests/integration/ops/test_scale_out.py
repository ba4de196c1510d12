"""Scale-out: one front end and two workers, as separate processes on one Redis.

`stylebot run` (Telegram, against the fake Bot API in this process) and two
`stylebot worker` processes share a Redis the test owns and an S3 object store (a
real SeaweedFS server), and nothing else: each process has a private data directory,
as a worker on another host would, configured only with what docs/operations.md says
such a worker needs: REDIS_URL, the blob store's URL and credentials, the model, and
the front end's signing identity. A user trains a style through Telegram; the worker
that runs the job is SIGKILLed after its first checkpoint; the other worker resumes
from it, the user gets "ready", and an /imagine in the new style comes back through
the front end.

Telegram rather than Discord: the Bot API is plain HTTP polling, so the front end
process needs only its base URL (`STYLEBOT_TELEGRAM_API_URL`) to use the fake,
where discord.py would need both its HTTP and gateway URLs patched in the child.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from tests.fakes.telegram_api import AlbumDocument, FakeTelegram
from tests.support.processes import StylebotProcess, child_env, wait_until
from tests.support.s3_server import SeaweedS3

from stylebot.bootstrap import PngWatermarkReader
from stylebot.bot.console.session import make_sample_images
from stylebot.provenance.content_credentials import read_content_credentials
from stylebot.provenance.signing import CHAIN_FILE, KEY_FILE, ensure_signing_identity
from stylebot.queue.connection import deserialize_job
from stylebot.queue.keys import EVENTS_STREAM, arq_job_key, checkpoint_key
from stylebot.queue.payloads import JobEvent, TrainJob
from stylebot.queue.redis_server import EmbeddedRedis
from stylebot.terminal_status import RunningJob, read_snapshot

pytestmark = pytest.mark.slow

TOKEN = "7654321:stylebot-scale_out"
STEPS = 60
# Under the default (50): the first checkpoint comes early, and the job shows the setting.
CHECKPOINT_EVERY = 10
# Short, so the killed worker's job is free again within seconds.
LEASE_S = 3
STARTUP_S = 180  # two workers importing torch at once on a busy machine
JOB_S = 180


@pytest.fixture
def shared_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """The one Redis of the deployment; the test owns it, so it outlives any process."""
    with EmbeddedRedis(tmp_path / "redis-home") as server:
        yield server


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as server:
        yield server


def running_training(client: redis.Redis) -> RunningJob | None:
    return next((job for job in read_snapshot(client).running if job.kind == "train"), None)


def job_events(client: redis.Redis, job_id: str) -> list[JobEvent]:
    events = [JobEvent.from_json(fields[b"event"]) for _id, fields in client.xrange(EVENTS_STREAM)]
    return [event for event in events if event.job_id == job_id]


def query(database: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        return db.execute(sql, params).fetchall()


async def test_a_job_whose_worker_is_killed_finishes_on_the_other_and_reaches_the_user(
    tmp_path: Path,
    tiny_model_dir: Path,
    shared_redis: EmbeddedRedis,
    fake_telegram: FakeTelegram,
    s3_server: SeaweedS3,
    s3_prefix: str,
) -> None:
    fake = fake_telegram
    frontend_data = tmp_path / "frontend"
    # The identity the front end loads at start, made here first so that the
    # workers can be pointed at its files before the front end has run.
    signing_dir = frontend_data / "c2pa"
    identity = ensure_signing_identity(signing_dir)
    common = {
        "REDIS_URL": shared_redis.url,
        "STYLEBOT_BASE_MODEL": str(tiny_model_dir),
        "STYLEBOT_DEVICE": "cpu",
        "STYLEBOT_LOG_FORMAT": "json",
        **s3_server.env(s3_prefix),
    }
    frontend = StylebotProcess.start(
        "front end",
        ["run"],
        child_env(
            **common,
            STYLEBOT_DATA_DIR=str(frontend_data),
            TELEGRAM_TOKEN=TOKEN,
            STYLEBOT_TELEGRAM_API_URL=f"http://127.0.0.1:{fake.port}",
            STYLEBOT_TRAIN_STEPS=str(STEPS),
            STYLEBOT_TRAIN_RESOLUTION="64",
            STYLEBOT_LEARNING_RATE="0.001",
            STYLEBOT_CHECKPOINT_EVERY_STEPS=str(CHECKPOINT_EVERY),
            STYLEBOT_DEFAULT_SIZE="256",
            STYLEBOT_DEFAULT_STEPS="4",
        ),
        tmp_path / "frontend.log",
    )
    workers = [
        StylebotProcess.start(
            name,
            ["worker"],
            child_env(
                **common,
                STYLEBOT_DATA_DIR=str(tmp_path / name),  # its own, shared with nobody
                STYLEBOT_JOB_LEASE_S=str(LEASE_S),
                STYLEBOT_C2PA_CERT_CHAIN=str(signing_dir / CHAIN_FILE),
                STYLEBOT_C2PA_PRIVATE_KEY=str(signing_dir / KEY_FILE),
            ),
            tmp_path / f"{name}.log",
        )
        for name in ("host-a", "host-b")
    ]
    client = redis.Redis.from_url(shared_redis.url)
    exits: dict[str, int] = {}
    job_id: str | None = None
    try:
        await wait_until(
            "the front end to poll Telegram",
            lambda: bool(fake.calls("getUpdates")),
            STARTUP_S,
            frontend,
            *workers,
        )

        def both_workers_up() -> bool:
            names = [health.name for health in read_snapshot(client).workers]
            return all(any(n.endswith(f"-{w.pid}") for n in names) for w in workers)

        await wait_until("both workers to be ready", both_workers_up, STARTUP_S, frontend, *workers)

        # Ada sends two files captioned /train sturdy; to the consent question she
        # answers by typing (the buttons are the Telegram tests' subject).
        ada = fake.user(id=1001, first_name="Ada", username="ada")
        chat = fake.private_chat(ada)
        refs = make_sample_images(tmp_path / "refs", 2, size=96)
        await fake.send_album(
            chat,
            ada,
            [AlbumDocument(p.read_bytes(), p.name, "image/png") for p in refs],
            caption="/train sturdy",
        )
        await fake.wait_for_sent(chat, lambda m: bool(m.buttons), timeout=30)
        await fake.send_text(chat, ada, "/consent own-work")

        # One worker runs it and saves a checkpoint; then it dies without a word.
        def checkpointed() -> bool:
            job = running_training(client)
            return job is not None and client.get(checkpoint_key(job.job_id)) is not None

        def chat_texts() -> str:
            return "chat: " + repr([m.text for m in fake.sent_messages(chat)])

        await wait_until(
            "a training checkpoint", checkpointed, JOB_S, frontend, *workers, seen=chat_texts
        )
        training = running_training(client)
        assert training is not None
        job_id = training.job_id
        record = client.get(arq_job_key(job_id))
        assert record is not None
        payload = TrainJob.from_dict(deserialize_job(record)["a"][0])
        holders = [w for w in workers if w.job_log(job_id)]
        assert len(holders) == 1, "exactly one worker runs the job"
        victim = holders[0]
        survivor = next(w for w in workers if w is not victim)
        victim.kill()
        saved = client.get(checkpoint_key(job_id))
        assert saved is not None
        saved_step = int(json.loads(saved)["step"])
        saved_key = json.loads(saved)["blob_key"]

        # The other worker takes it over; the user hears that it is ready.
        ready = await fake.wait_for_sent(
            chat, lambda m: "Style sturdy is ready" in (m.text or ""), timeout=JOB_S
        )
        # ...and the style works: an image in it comes back through the front end.
        await fake.send_text(chat, ada, "/imagine a lighthouse at dawn style:sturdy seed:3")
        delivered = await fake.wait_for_sent(chat, lambda m: m.document is not None, timeout=JOB_S)
    finally:
        for process in (frontend, *workers):
            if process.running():
                exits[process.name] = await asyncio.to_thread(process.stop)
        events = job_events(client, job_id) if job_id else []
        leftover_checkpoint = client.get(checkpoint_key(job_id)) if job_id else None
        client.close()

    # Both stop cleanly on SIGTERM once the work is done.
    assert exits == {"front end": 0, survivor.name: 0}, [p.describe() for p in (frontend, survivor)]

    # The front end's training settings travel in the job, checkpoint interval included.
    assert (payload.settings.steps, payload.settings.checkpoint_every_steps) == (
        STEPS,
        CHECKPOINT_EVERY,
    )
    assert 0 < saved_step < STEPS
    # The survivor resumed the run after the checkpoint, in lines tagged with the job id.
    survivor_lines = survivor.job_log(job_id)
    assert f"training job {job_id} resumes after step {saved_step}" in survivor_lines, (
        survivor.describe()
    )
    assert not any("resumes" in line for line in victim.job_log(job_id))

    # Trained once: two starts (from 0, then from the checkpoint), one finish with
    # every step, progress picking up right after the checkpoint, nothing left over.
    starts = [event.step for event in events if event.kind == "started"]
    assert starts == [0, saved_step]
    second_run = events[[e.kind for e in events].index("started", 1) :]
    progress = [event.step for event in second_run if event.kind == "progress"]
    assert progress[0] == saved_step + 1
    assert progress[-1] == STEPS
    finished = [event for event in events if event.kind == "finished"]
    assert len(finished) == 1
    assert finished[0].train_result().steps == STEPS
    assert leftover_checkpoint is None

    # The front end's records: one finished training, one ready style, one status
    # message edited from queued to ready.
    database = frontend_data / "stylebot.sqlite3"
    assert query(database, "SELECT id, status FROM jobs WHERE kind = 'train'") == [
        (job_id, "finished")
    ]
    ((style_id, status, lora_key),) = query(database, "SELECT id, status, lora_key FROM styles")
    assert (status, lora_key) == ("ready", finished[0].train_result().lora_key)
    assert f"{STEPS} steps" in (ready.text or "")
    assert ready.text_history[0].startswith("Training sturdy")
    assert sum("Style sturdy is ready" in (m.text or "") for m in fake.sent_messages(chat)) == 1

    # The image is the survivor's work, recorded by the front end, in the new style,
    # and signed with the front end's identity (the workers were given its files).
    png = delivered.document_bytes
    assert png is not None
    assert png.startswith(b"\x89PNG")
    output_id = PngWatermarkReader().read(png)
    assert output_id is not None
    ((generate_job, output_style, prompt),) = query(
        database, "SELECT job_id, style_id, prompt FROM outputs WHERE id = ?", output_id
    )
    assert (output_style, prompt) == (style_id, "a lighthouse at dawn")
    assert survivor.job_log(str(generate_job)), "the surviving worker generated it"
    credentials = read_content_credentials(png, identity.chain_pem)
    assert credentials is not None
    assert credentials.trusted, credentials

    # Nothing went through a shared disk: no process has a blob directory, and the
    # style's weights and the delivered image are objects in the bucket.
    for data_dir in (frontend_data, tmp_path / "host-a", tmp_path / "host-b"):
        assert not (data_dir / "blobs").exists(), data_dir
    stored = {
        item["Key"].removeprefix(s3_prefix)
        for item in s3_server.client()
        .list_objects_v2(Bucket=s3_server.BUCKET, Prefix=s3_prefix)
        .get("Contents", [])
    }
    ((output_key,),) = query(database, "SELECT blob_key FROM outputs WHERE id = ?", output_id)
    assert {lora_key, output_key} <= stored
    assert saved_key not in stored, "the run's checkpoint is deleted when it ends"
