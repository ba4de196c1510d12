"""`stylebot status` on a real embedded Redis holding queued jobs, next to a running front end."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from pathlib import Path

import redis

from stylebot.bootstrap import FrontEnd
from stylebot.queue.payloads import CaptionJob, GenerateJob, TrainJob, TrainSettings
from stylebot.queue.training_switch import RedisTrainingSwitch
from stylebot.terminal_status import progress_bar, read_snapshot, render_snapshot, run_status


def generate_job(job_id: str) -> GenerateJob:
    return GenerateJob(
        job_id=job_id,
        prompt="a lighthouse",
        negative_prompt="",
        seed=1,
        steps=4,
        guidance=7.5,
        width=256,
        height=256,
        output_ids=("0123456789ab",),
    )


def status_cli(data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STYLEBOT_")}
    env.pop("REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "stylebot", "--data-dir", str(data_dir), "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_snapshot_lists_queued_jobs_in_order_with_their_kind(
    frontend: FrontEnd,
) -> None:
    await frontend.queue.enqueue_train(
        TrainJob("train-1", 1, "trigger", ("a" * 64,), TrainSettings(steps=8))
    )
    # arq orders its queue by enqueue time in ms; within one ms, by job id.
    await asyncio.sleep(0.005)
    await frontend.queue.enqueue_generate(generate_job("gen-1"))
    client = redis.Redis.from_url(frontend.redis_url)
    try:
        snapshot = await asyncio.to_thread(read_snapshot, client)
    finally:
        client.close()
    assert [(job.job_id, job.kind) for job in snapshot.queued] == [
        ("train-1", "train"),
        ("gen-1", "generate"),
    ]
    assert snapshot.depth("train") == 1
    assert snapshot.depth("generate") == 1
    assert snapshot.running == ()
    assert all(job.starts == 0 for job in snapshot.queued)
    assert all(job.enqueued_at is not None for job in snapshot.queued)
    text = render_snapshot(snapshot)
    assert "Queue: 2 waiting (train 1, generate 1)" in text
    assert "none has checked in" in text
    assert text.index("train-1") < text.index("gen-1")
    assert "paused" not in text


async def test_caption_jobs_are_counted_only_when_some_wait(frontend: FrontEnd) -> None:
    await frontend.queue.enqueue_generate(generate_job("gen-1"))
    await frontend.queue.enqueue_caption(CaptionJob("caption-1", ("a" * 64,), "test:1"))
    client = redis.Redis.from_url(frontend.redis_url)
    try:
        snapshot = await asyncio.to_thread(read_snapshot, client)
    finally:
        client.close()
    assert snapshot.depth("caption") == 1
    assert "Queue: 2 waiting (train 0, generate 1, caption 1)" in render_snapshot(snapshot)


async def test_a_cancelled_job_is_not_counted_as_waiting(frontend: FrontEnd) -> None:
    """It stays in arq's queue until a worker drops it, but nobody waits for it."""
    await frontend.queue.enqueue_train(
        TrainJob("train-1", 1, "trigger", ("a" * 64,), TrainSettings(steps=8))
    )
    await frontend.queue.enqueue_generate(generate_job("gen-1"))
    await frontend.queue.cancel("train-1")
    client = redis.Redis.from_url(frontend.redis_url)
    try:
        snapshot = await asyncio.to_thread(read_snapshot, client)
    finally:
        client.close()
    assert [job.job_id for job in snapshot.queued] == ["gen-1"]
    assert snapshot.depth("train") == 0
    assert "Queue: 1 waiting (train 0, generate 1)" in render_snapshot(snapshot)


async def test_a_training_pause_shows(frontend: FrontEnd) -> None:
    await RedisTrainingSwitch(frontend.queue.redis).pause("discord:root")
    client = redis.Redis.from_url(frontend.redis_url)
    try:
        snapshot = await asyncio.to_thread(read_snapshot, client)
    finally:
        client.close()
    assert snapshot.training_paused_by == "discord:root"
    assert "training is paused (by discord:root)" in render_snapshot(snapshot)


async def test_the_command_reads_redis_while_the_front_end_holds_the_database(
    frontend: FrontEnd,
) -> None:
    await frontend.queue.enqueue_generate(generate_job("gen-cli"))
    result = await asyncio.to_thread(status_cli, frontend.settings.data_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Queue: 1 waiting (train 0, generate 1)" in result.stdout
    assert "gen-cli" in result.stdout
    assert "Running (0)" in result.stdout


def test_with_nothing_running_it_says_so_and_starts_nothing(tmp_path: Path) -> None:
    result = status_cli(tmp_path / "data")
    assert result.returncode == 1
    assert "no embedded Redis is running" in result.stdout
    assert not (tmp_path / "data").exists()


def test_progress_bars() -> None:
    assert progress_bar(0, 0, width=10) == "[..........]  starting"
    assert progress_bar(5, 20, width=10) == "[##--------]  25%  5/20"
    assert progress_bar(20, 20, width=10) == "[##########] 100%  20/20"
    assert progress_bar(30, 20, width=10).startswith("[##########] 100%")


async def test_a_running_worker_checks_in(frontend: FrontEnd, worker: None) -> None:
    client = redis.Redis.from_url(frontend.redis_url)
    try:
        async with asyncio.timeout(30):
            while True:
                snapshot = await asyncio.to_thread(read_snapshot, client)
                if snapshot.workers:
                    break
                await asyncio.sleep(0.1)
    finally:
        client.close()
    (seen,) = snapshot.workers
    assert seen.failed == 0
    assert seen.expires_in_s > 0
    assert "Workers (1)" in render_snapshot(snapshot)


async def test_watch_refreshes_until_stopped(frontend: FrontEnd) -> None:
    await frontend.queue.enqueue_generate(generate_job("gen-watch"))
    out = io.StringIO()
    code = await asyncio.to_thread(run_status, frontend.settings, out, watch_every_s=0.01, rounds=2)
    assert code == 0
    assert out.getvalue().count("Queue: 1 waiting (train 0, generate 1)") == 2
