"""Damaged stored files (issue 20), with bytes flipped on disk for real: never used,
reported once in words that say what to do, and repaired by storing the right bytes."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
from tests.support.damage import flip_byte
from tests.support.stack import Inbox

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
    ErrorReply,
    ImagesReady,
    JobFinished,
    JobQueued,
    TextReply,
)
from stylebot.log_privacy import JobArgumentsFilter
from stylebot.queue.connection import connect
from stylebot.queue.payloads import GeneratedImage, GenerateResult, JobEvent
from stylebot.queue.recovery import CheckpointStore

pytestmark = pytest.mark.slow

ME = Requester("test", "u1", "Ada", chat_id="c1", server_id="s1")


def sample_files(directory: Path, count: int) -> tuple[IncomingFile, ...]:
    return tuple(IncomingFile(p.name, p.read_bytes()) for p in make_sample_images(directory, count))


async def test_a_damaged_waiting_upload_is_refused_at_consent_and_repaired_by_sending_it_again(
    frontend: FrontEnd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bot = frontend.bot
    files = sample_files(tmp_path / "refs", 2)
    assert isinstance(await bot.handle(UploadImages(ME, files)), ConsentRequest)
    user = await frontend.uow.users.get_or_create_user("test", "u1", "Ada")
    [first, _] = await frontend.uow.uploads.pending_uploads(user.id)
    flip_byte(frontend.blobs.path(first.blob_key))

    with caplog.at_level(logging.INFO):
        refused = await bot.handle(ConfirmConsent(ME, "own-work", rights_confirmed=True))
    assert isinstance(refused, ErrorReply)
    assert "damaged" in refused.text
    assert "send it again" in refused.text
    # The operator's line names the blob to restore, not the person who asked.
    [line] = [r.getMessage() for r in caplog.records if r.name.startswith("stylebot")]
    assert first.blob_key in line
    assert ME.user_id not in line

    assert isinstance(await bot.handle(UploadImages(ME, files)), ConsentRequest)
    confirmed = await bot.handle(ConfirmConsent(ME, "own-work", rights_confirmed=True))
    assert isinstance(confirmed, TextReply), confirmed


async def test_damaged_style_weights_fail_generation_for_good_until_the_right_bytes_return(
    frontend: FrontEnd,
    inbox: Inbox,
    worker: None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = frontend.bot
    await bot.handle(UploadImages(ME, sample_files(tmp_path / "refs", 3)))
    await bot.handle(ConfirmConsent(ME, "own-work", rights_confirmed=True))
    assert isinstance(await bot.handle(TrainStyle(ME, "warm")), JobQueued)
    trained = await inbox.next((JobFinished,))
    assert isinstance(trained.reply, JobFinished)
    assert trained.reply.ok, trained.reply
    user = await frontend.uow.users.get_or_create_user("test", "u1", "Ada")
    style = await frontend.uow.styles.find_style(user.id, "warm")
    assert style is not None
    assert style.lora_key
    weights = await frontend.blobs.get(style.lora_key)
    flip_byte(frontend.blobs.path(style.lora_key))

    caplog.set_level(logging.INFO)
    caplog.clear()
    asked = await bot.handle(Imagine(ME, "a lighthouse", style="warm", seed=11))
    assert isinstance(asked, JobQueued)
    failed = await inbox.next((ImagesReady, JobFinished))
    assert isinstance(failed.reply, JobFinished), failed.reply
    assert not failed.reply.ok
    assert "style warm's weights are damaged: retrain it" in failed.reply.text
    assert "try again" not in failed.reply.text
    # Ours, once (arq's own "job failed" bookkeeping line is arq's, for every failed job).
    operator_lines = [
        r
        for r in caplog.records
        if r.name.startswith("stylebot") and "weights are damaged" in r.getMessage()
    ]
    assert len(operator_lines) == 1, [r.getMessage() for r in operator_lines]
    [line] = operator_lines
    assert line.levelno == logging.ERROR
    assert line.exc_info is None
    assert style.lora_key in line.getMessage()
    assert f"restore {frontend.blobs.root} from a backup" in line.getMessage()
    # The operator's line says which style by id (issue 20); its name is Ada's, and no
    # line as the log handlers' guard passes it (arq's failure line and its trace
    # included, logged after the job's texts are no longer redacted) carries it or the
    # prompt.
    assert f"style {style.id}'s weights are damaged" in line.getMessage()
    for record in caplog.records:
        JobArgumentsFilter().filter(record)
        logged = record.getMessage()
        if record.exc_info:
            logged += logging.Formatter().formatException(record.exc_info)
        assert "warm" not in logged, logged
        assert "a lighthouse" not in logged, logged

    assert await frontend.blobs.put(weights) == style.lora_key  # the repair
    again = await bot.handle(Imagine(ME, "a lighthouse", style="warm", seed=11))
    assert isinstance(again, JobQueued)
    ready = await inbox.next((ImagesReady, JobFinished))
    assert isinstance(ready.reply, ImagesReady), ready.reply


async def test_a_damaged_training_image_fails_training_without_an_offer_to_retry(
    frontend: FrontEnd, inbox: Inbox, worker: None, tmp_path: Path
) -> None:
    bot = frontend.bot
    await bot.handle(UploadImages(ME, sample_files(tmp_path / "refs", 2)))
    await bot.handle(ConfirmConsent(ME, "own-work", rights_confirmed=True))
    user = await frontend.uow.users.get_or_create_user("test", "u1", "Ada")
    consent = await frontend.uow.consents.latest_consent(user.id)
    assert consent is not None
    flip_byte(frontend.blobs.path(consent.image_hashes[0]))

    assert isinstance(await bot.handle(TrainStyle(ME, "warm")), JobQueued)
    done = await inbox.next((JobFinished,))
    assert isinstance(done.reply, JobFinished)
    assert not done.reply.ok
    assert "reference images is damaged in storage" in done.reply.text
    assert "try again." not in done.reply.text


async def test_a_damaged_training_checkpoint_is_not_resumed_from(
    frontend: FrontEnd, tmp_path: Path
) -> None:
    client = await connect(frontend.redis_url)
    try:
        await client.enqueue_job("train", {}, _job_id="train-damaged")  # a training, in arq
        checkpoints = CheckpointStore(client, frontend.blobs)
        state = tmp_path / "state.pt"
        state.write_bytes(b"lora and optimiser state" * 100)
        await checkpoints.save_file("train-damaged", state, 40)
        assert await checkpoints.latest_to_file("train-damaged", tmp_path / "first.pt") == 40
        flip_byte(frontend.blobs.path(hashlib.sha256(state.read_bytes()).hexdigest()))
        # Training again from step 0 is slower, never wrong; resuming from garbage is.
        assert await checkpoints.latest_to_file("train-damaged", tmp_path / "again.pt") is None
        assert not (tmp_path / "again.pt").exists()
    finally:
        await client.aclose()


async def test_a_generated_image_damaged_before_delivery_is_reported_not_retried_forever(
    frontend: FrontEnd, tmp_path: Path
) -> None:
    asked = await frontend.bot.handle(Imagine(ME, "a lighthouse", seed=3))
    assert isinstance(asked, JobQueued)
    [output] = await frontend.uow.outputs.job_outputs(asked.job_id)
    [sample] = make_sample_images(tmp_path / "made", 1)
    key = await frontend.blobs.put(sample.read_bytes())
    flip_byte(frontend.blobs.path(key))
    result = GenerateResult((GeneratedImage(output.id, key, 3),), 1.0)
    finished = JobEvent(asked.job_id, "generate", "finished", result=result.to_dict())

    [told] = await frontend.bot.handle_event(finished)
    assert isinstance(told.reply, JobFinished)
    assert not told.reply.ok
    assert "damaged in storage" in told.reply.text
