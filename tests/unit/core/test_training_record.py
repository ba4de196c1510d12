"""The bot core chooses training settings from the number of images, keeps them
and the validation curve on the style, and tells the user what the curve says."""

from __future__ import annotations

from tests.fakes.core import (
    CoreWorld,
    PixelWatermark,
    RecordingQueue,
    SteppingClock,
    bot_on,
    person,
    png,
)
from tests.fakes.memory import InMemoryBlobStore, InMemoryUnitOfWork

from stylebot.bot.core.commands import (
    ConfirmConsent,
    IncomingFile,
    StyleInfo,
    TrainStyle,
    UploadImages,
)
from stylebot.bot.core.grammar import parse, split_command
from stylebot.bot.core.policy import Policy
from stylebot.bot.core.replies import ErrorReply, ImagesReady, JobFinished, JobQueued, TextReply
from stylebot.bot.core.style_metrics import metrics_lines
from stylebot.bot.core.training import validation_summary
from stylebot.bot.core.training_defaults import choose_train_settings
from stylebot.queue.payloads import (
    JobEvent,
    StyleMetrics,
    TrainResult,
    TrainSettings,
    ValidationPoint,
)

ALICE = person("alice")


def _world(policy: Policy) -> CoreWorld:
    repo, blobs, queue, watermark = (
        InMemoryUnitOfWork(),
        InMemoryBlobStore(),
        RecordingQueue(),
        PixelWatermark(),
    )
    bot = bot_on(repo, blobs, queue, watermark, SteppingClock(), policy)
    return CoreWorld(bot, repo, blobs, queue, watermark)


async def _consented_uploads(world: CoreWorld, images: int) -> None:
    files = tuple(IncomingFile(f"img{i}.png", png((i * 20, 40, 90))) for i in range(images))
    await world.bot.handle(UploadImages(ALICE, files))
    await world.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))


async def _queue_training(world: CoreWorld, images: int) -> JobQueued:
    await _consented_uploads(world, images)
    queued = await world.bot.handle(TrainStyle(ALICE, "ink"))
    assert isinstance(queued, JobQueued), queued
    return queued


def _typed(text: str) -> TrainStyle:
    typed = split_command(text)
    assert typed is not None
    command = parse(typed, ALICE)
    assert isinstance(command, TrainStyle)
    return command


async def test_a_style_trains_the_variant_its_member_typed_over_the_operators() -> None:
    base = TrainSettings(steps=10, resolution=64, lora_variant="lokr")
    world = _world(Policy(base_model="tiny", train=base))
    await _consented_uploads(world, 3)
    refused = await world.bot.handle(_typed("/train ink variant:loha"))
    assert isinstance(refused, ErrorReply)
    assert "lora, dora or lokr" in refused.text
    assert world.queue.train_jobs == []
    queued = await world.bot.handle(_typed("/train ink variant:DoRA"))
    assert isinstance(queued, JobQueued), queued
    [job] = world.queue.train_jobs
    assert job.settings.lora_variant == "dora"
    style = await world.uow.styles.get_style(job.style_id)
    assert style is not None
    assert style.train_settings["lora_variant"] == "dora"


async def test_without_a_variant_the_operators_goes_with_the_job() -> None:
    world = _world(Policy(base_model="tiny", train=TrainSettings(lora_variant="lokr")))
    await _queue_training(world, 3)
    [job] = world.queue.train_jobs
    assert job.settings.lora_variant == "lokr"


async def test_settings_chosen_from_the_images_travel_in_the_job_and_the_record() -> None:
    base = TrainSettings(steps=10, resolution=64, learning_rate=3e-4)
    world = _world(Policy(base_model="tiny", train=base, train_chosen_from_images=("rank",)))
    await _queue_training(world, 12)
    [job] = world.queue.train_jobs
    expected = choose_train_settings(12, base, ("rank",))
    assert job.settings == expected
    # The operator's values stay; the rest follows the 12 images.
    assert (job.settings.steps, job.settings.learning_rate) == (10, 3e-4)
    assert job.settings.rank == 16
    assert job.settings.holdout_images == 2
    style = await world.uow.styles.get_style(job.style_id)
    assert style is not None
    assert style.train_settings == expected.to_dict()


async def test_the_validation_curve_is_kept_and_reported(world: CoreWorld) -> None:
    queued = await _queue_training(world, 3)
    [job] = world.queue.train_jobs
    assert job.settings.holdout_images == 1

    curve = (ValidationPoint(5, 0.30, 0.25), ValidationPoint(10, 0.21, 0.25))
    result = TrainResult(
        lora_key=await world.blobs.put(b"lora"),
        steps=10,
        final_loss=0.1,
        seconds=1.0,
        validation=curve,
    )
    # Through JSON, as the event arrives from Redis.
    event = JobEvent.from_json(
        JobEvent(queued.job_id, "train", "finished", result=result.to_dict()).to_json()
    )
    [done] = await world.bot.handle_event(event)
    assert isinstance(done.reply, JobFinished)
    assert "validation loss 0.2100 vs 0.2500 for the base model" in done.reply.text
    assert await world.uow.styles.style_validation(job.style_id) == curve
    info = await world.bot.handle(StyleInfo(ALICE, "ink"))
    assert isinstance(info, TextReply)
    assert "1 image(s) held out for validation" in info.text
    assert "validation: Held-out images: validation loss 0.2100 vs 0.2500" in info.text
    assert "learned something" in info.text


async def test_the_report_picture_goes_privately_just_before_the_ready_message(
    world: CoreWorld,
) -> None:
    queued = await _queue_training(world, 3)
    picture = png((10, 200, 30))
    report_key = await world.blobs.put(picture)
    result = TrainResult(
        lora_key=await world.blobs.put(b"lora"),
        steps=10,
        final_loss=0.1,
        seconds=1.0,
        report_key=report_key,
    )
    event = JobEvent(queued.job_id, "train", "finished", result=result.to_dict())
    report, done = await world.bot.handle_event(JobEvent.from_json(event.to_json()))
    assert isinstance(done.reply, JobFinished)
    assert "Style ink is ready" in done.reply.text
    assert isinstance(report.reply, ImagesReady)
    assert report.to == done.to
    # A training's own picture: shown as its previews are, to the owner alone.
    assert report.reply.preview_of == queued.job_id
    assert [image.data for image in report.reply.images] == [picture]
    assert "How ink trained" in report.reply.text
    # Its blob names no record: read once, then gone; the event again has no picture.
    assert not await world.blobs.exists(report_key)
    again = await world.bot.handle_event(JobEvent.from_json(event.to_json()))
    assert not any(isinstance(n.reply, ImagesReady) for n in again)


async def test_style_info_shows_the_clip_metrics_in_words(world: CoreWorld) -> None:
    queued = await _queue_training(world, 3)
    metrics = StyleMetrics(0.21, 0.83, 0.62, 27.54, 29.0, 0.0123, 4, "tiny-clip")
    result = TrainResult(
        lora_key=await world.blobs.put(b"lora"),
        steps=10,
        final_loss=0.1,
        seconds=1.0,
        validation=(ValidationPoint(10, 0.21, 0.25),),
        metrics=metrics,
    )
    event = JobEvent(queued.job_id, "train", "finished", result=result.to_dict())
    await world.bot.handle_event(JobEvent.from_json(event.to_json()))
    info = await world.bot.handle(StyleInfo(ALICE, "ink"))
    assert isinstance(info, TextReply)
    lines = info.text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("validation:"))
    # Next to the validation loss, in words.
    assert lines[at + 1] == (
        "likeness: the style moves images 0.21 closer to your references than the base "
        "model does (similarity 0.83 vs 0.62, 4 test prompts)"
    )
    assert "CLIP score 27.5 with the style, 29.0 without" in lines[at + 2]
    assert "(KID): 0.012" in lines[at + 3]


def test_the_metrics_say_when_a_style_moved_nothing_or_moved_away() -> None:
    same = StyleMetrics(0.004, 0.6, 0.596, 30.0, 30.0, None, 4, "clip")
    assert "no closer to your references" in metrics_lines(same)
    assert "KID" not in metrics_lines(same)
    away = StyleMetrics(-0.1, 0.5, 0.6, 30.0, 30.0, 0.2, 4, "clip")
    assert "0.10 further from your references" in metrics_lines(away)
    assert metrics_lines(None) == ""


async def test_a_single_image_style_has_no_curve_and_says_nothing_about_one(
    world: CoreWorld,
) -> None:
    queued = await _queue_training(world, 1)
    result = TrainResult(
        lora_key=await world.blobs.put(b"lora"), steps=10, final_loss=0.1, seconds=1
    )
    [done] = await world.bot.handle_event(
        JobEvent(queued.job_id, "train", "finished", result=result.to_dict())
    )
    assert isinstance(done.reply, JobFinished)
    assert "validation" not in done.reply.text
    info = await world.bot.handle(StyleInfo(ALICE, "ink"))
    assert isinstance(info, TextReply)
    assert "0 image(s) held out" in info.text
    assert "validation:" not in info.text


async def test_style_info_shows_a_style_still_training_and_one_that_failed(
    world: CoreWorld,
) -> None:
    queued = await _queue_training(world, 3)
    training = await world.bot.handle(StyleInfo(ALICE, "ink"))
    assert isinstance(training, TextReply), training
    assert "status: training" in training.text
    assert "1 image(s) held out for validation" in training.text

    await world.bot.handle_event(JobEvent(queued.job_id, "train", "failed", error="out of memory"))
    failed = await world.bot.handle(StyleInfo(ALICE, "ink"))
    assert isinstance(failed, TextReply), failed
    assert "status: failed" in failed.text


def test_the_summary_says_whether_training_learned_anything() -> None:
    assert validation_summary(()) == ""
    better = validation_summary([ValidationPoint(10, 0.20, 0.25)])
    same = validation_summary([ValidationPoint(10, 0.2501, 0.25)])
    worse = validation_summary([ValidationPoint(10, 0.40, 0.25)])
    assert "learned something" in better
    assert "learned little" in same
    assert "worse" in worse
    # The last point is the verdict, not the first.
    assert "learned something" in validation_summary(
        [ValidationPoint(5, 0.5, 0.25), ValidationPoint(10, 0.2, 0.25)]
    )
