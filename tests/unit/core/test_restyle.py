"""/restyle's rules in the core, on in-memory fakes: the picture is an upload (checked,
refused on an /optout match or metadata forbidding AI use), a stylebot output the member
may see is used as stored, any other picture needs the member's confirmation (recorded in
the ledger), and it is queued like /imagine with its source and strength."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image
from tests.fakes.core import CoreWorld, RecordingQueue, person, png
from tests.unit.core.test_service import trained_style
from tests.unit.safety.reservations import png_with_xmp, xmp_with_data_mining

from stylebot.bot.core.commands import (
    DeleteOutput,
    EraseMyData,
    ExtendOutput,
    Imagine,
    IncomingFile,
    OptOut,
    RerollOutput,
    Restyle,
    ShareStyle,
    UpscaleOutput,
    VaryOutput,
    Verify,
)
from stylebot.bot.core.errors import CommandSyntaxError, QueueUnavailable
from stylebot.bot.core.extend import extend_geometry
from stylebot.bot.core.grammar import parse_restyle
from stylebot.bot.core.ledger import LedgerKind
from stylebot.bot.core.mentions import CommandName, mentions_in
from stylebot.bot.core.replies import ErrorReply, JobQueued, TextReply, VerifyReport
from stylebot.bot.core.restyle import DEFAULT_STRENGTH, restyle_size
from stylebot.bot.core.upscale import UPSCALE_STRENGTH
from stylebot.queue.payloads import GeneratedImage, GenerateJob, GenerateResult, JobEvent

ALICE = person("alice")
BOB = person("bob")


def picture(width: int = 300, height: int = 150, seed: int = 4) -> bytes:
    small = np.random.default_rng(seed).integers(0, 256, (6, 12, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def restyle(data: bytes, who: object = ALICE, **options: object) -> Restyle:
    return Restyle(who, IncomingFile("garden.png", data), "ink", **options)  # type: ignore[arg-type]


async def image_use_entries(world: CoreWorld) -> list[dict[str, object]]:
    entries = await world.uow.ledger.entries()
    return [e.payload for e in entries if e.kind == LedgerKind.IMAGE_USE]


async def test_a_picture_of_ones_own_needs_confirmation_and_nothing_is_kept_before(
    world: CoreWorld,
) -> None:
    await trained_style(world)
    blobs_before = set(world.blobs.blobs)
    asked = await world.bot.handle(restyle(picture()))
    assert isinstance(asked, ErrorReply)
    assert "not a stylebot image of yours" in asked.text
    assert "confirm" in asked.text
    assert world.queue.generate_jobs == []
    assert set(world.blobs.blobs) == blobs_before
    assert await image_use_entries(world) == []


async def test_confirmed_it_is_queued_with_its_picture_and_the_ledger_records_it(
    world: CoreWorld,
) -> None:
    await trained_style(world)
    queued = await world.bot.handle(restyle(picture(), strength=0.4, rights_confirmed=True))
    assert isinstance(queued, JobQueued), queued
    assert "Restyling your picture (strength 0.4) in style ink" in queued.text
    [job] = world.queue.generate_jobs
    assert job.source_key is not None
    assert job.strength == 0.4
    assert job.source_output_id is None
    # The stored picture is the checked, metadata-free PNG the worker reads.
    stored = world.blobs.blobs[job.source_key]
    assert hashlib.sha256(stored).hexdigest() == job.source_key
    assert stored.startswith(b"\x89PNG")
    # Its shape at the default size: 2:1 with the short side at the smallest size.
    assert (job.width, job.height) == (512, 256)
    [entry] = await image_use_entries(world)
    assert entry["image"]["sha256"] == job.source_key  # type: ignore[index]
    assert entry["job_id"] == job.job_id
    assert entry["use"] == "restyle"
    assert entry["rights_confirmed"] is True
    [output] = await world.uow.outputs.job_outputs(job.job_id)
    assert (output.source_key, output.denoising_strength) == (job.source_key, 0.4)


async def deliver(world: CoreWorld, job: GenerateJob, image: bytes) -> str:
    """Finish the job with `image` (read by the fake watermark as the job's output)."""
    result = GenerateResult(
        (GeneratedImage(job.output_ids[0], await world.blobs.put(image), job.seed),), 1.0
    )
    await world.bot.handle_event(
        JobEvent(job.job_id, "generate", "finished", result=result.to_dict())
    )
    return job.output_ids[0]


async def test_a_stylebot_output_is_used_as_stored_without_confirmation(
    world: CoreWorld,
) -> None:
    await trained_style(world)
    await world.bot.handle(Imagine(ALICE, "a lighthouse", style="ink"))
    [made] = world.queue.generate_jobs
    world.watermark.ids[(1, 2, 3)] = made.output_ids[0]
    output_id = await deliver(world, made, png((1, 2, 3), size=256))
    stored_key = (await world.uow.outputs.get_output(output_id)).blob_key  # type: ignore[union-attr]

    queued = await world.bot.handle(restyle(png((1, 2, 3), size=256)))
    assert isinstance(queued, JobQueued), queued
    job = world.queue.generate_jobs[-1]
    assert (job.source_key, job.source_output_id) == (stored_key, output_id)
    assert job.strength == DEFAULT_STRENGTH
    assert await image_use_entries(world) == []  # nothing to confirm

    # /verify of the restyle names what it was made from.
    world.watermark.ids[(4, 5, 6)] = job.output_ids[0]
    await deliver(world, job, png((4, 5, 6), size=256))
    verified = await world.bot.handle(Verify(ALICE, IncomingFile("r.png", png((4, 5, 6), 256))))
    assert isinstance(verified, VerifyReport)
    assert f"made from: stylebot output {output_id} (denoising strength 0.6)" in verified.text

    # A re-roll of the restyle starts from the same picture.
    await world.bot.handle(RerollOutput(ALICE, job.output_ids[0]))
    reroll = world.queue.generate_jobs[-1]
    assert (reroll.source_key, reroll.source_output_id) == (stored_key, output_id)


async def test_someone_elses_private_output_is_not_theirs_to_restyle_unconfirmed(
    world: CoreWorld,
) -> None:
    await trained_style(world, ALICE, "ink")
    await world.bot.handle(Imagine(ALICE, "a lighthouse", style="ink"))
    [made] = world.queue.generate_jobs
    world.watermark.ids[(1, 2, 3)] = made.output_ids[0]
    await deliver(world, made, png((1, 2, 3), size=256))
    await trained_style(world, BOB, "chalk")
    asked = await world.bot.handle(
        Restyle(BOB, IncomingFile("hers.png", png((1, 2, 3), size=256)), "chalk")
    )
    assert isinstance(asked, ErrorReply)
    assert "not a stylebot image of yours" in asked.text


async def test_metadata_forbidding_ai_use_is_refused(world: CoreWorld) -> None:
    await trained_style(world)
    reserved = png_with_xmp(
        xmp_with_data_mining("http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED"), compressed=False
    )
    refused = await world.bot.handle(restyle(reserved, rights_confirmed=True))
    assert isinstance(refused, ErrorReply)
    assert "can't be used here" in refused.text
    assert world.queue.generate_jobs == []


async def test_a_picture_its_artist_opted_out_is_refused(world: CoreWorld) -> None:
    artwork = picture(seed=9)
    registered = await world.bot.handle(OptOut(BOB, (IncomingFile("mine.png", artwork),)))
    assert isinstance(registered, TextReply), registered
    await trained_style(world)
    refused = await world.bot.handle(restyle(artwork, rights_confirmed=True))
    assert isinstance(refused, ErrorReply)
    assert "can't be used here" in refused.text
    assert world.queue.generate_jobs == []


@pytest.mark.parametrize("strength", [0.0, -0.5, 1.5])
async def test_strength_out_of_range_is_refused(world: CoreWorld, strength: float) -> None:
    await trained_style(world)
    refused = await world.bot.handle(restyle(picture(), strength=strength))
    assert isinstance(refused, ErrorReply)
    assert "strength" in refused.text


async def test_a_style_is_needed_and_must_be_usable_here(world: CoreWorld) -> None:
    await trained_style(world, ALICE, "ink")
    none = await world.bot.handle(Restyle(ALICE, IncomingFile("a.png", picture()), None))
    assert isinstance(none, ErrorReply)
    assert "Name the style" in none.text
    # Bob cannot use Alice's private style, as with /imagine.
    private = await world.bot.handle(restyle(picture(), BOB, rights_confirmed=True))
    assert isinstance(private, ErrorReply)
    assert "no style named ink" in private.text
    await world.bot.handle(ShareStyle(ALICE, "ink"))
    shared = await world.bot.handle(restyle(picture(), BOB, rights_confirmed=True))
    assert isinstance(shared, JobQueued)


async def test_the_picture_goes_with_its_last_output_and_with_an_erasure(
    world: CoreWorld,
) -> None:
    await trained_style(world)
    await world.bot.handle(restyle(picture(), rights_confirmed=True))
    await world.bot.handle(restyle(picture(), rights_confirmed=True))
    first, second = world.queue.generate_jobs
    assert first.source_key == second.source_key
    key = first.source_key
    assert key is not None
    await world.bot.handle(DeleteOutput(ALICE, first.output_ids[0]))
    assert key in world.blobs.blobs, "the other restyle still names it"
    await world.bot.handle(DeleteOutput(ALICE, second.output_ids[0]))
    assert key not in world.blobs.blobs

    await world.bot.handle(restyle(picture(seed=5), rights_confirmed=True))
    kept = world.queue.generate_jobs[-1].source_key
    assert kept in world.blobs.blobs
    await world.bot.handle(EraseMyData(ALICE, confirmed=True))
    assert kept not in world.blobs.blobs


@pytest.mark.parametrize("masked", [False, True])
async def test_when_the_queue_is_down_the_picture_is_not_kept(
    world: CoreWorld, masked: bool
) -> None:
    """Nor a repaint's mask."""

    class DownQueue(RecordingQueue):
        async def enqueue_generate(self, job: GenerateJob) -> None:
            raise QueueUnavailable("redis is down")

    await trained_style(world)
    world.bot.deps.queue = DownQueue()
    blobs_before = set(world.blobs.blobs)
    mask = IncomingFile("m.png", mask_png(64, 64, (0, 0, 32, 32))) if masked else None
    refused = await world.bot.handle(restyle(picture(), rights_confirmed=True, mask=mask))
    assert isinstance(refused, ErrorReply)
    assert set(world.blobs.blobs) == blobs_before
    assert await image_use_entries(world) == []


def test_the_size_keeps_the_pictures_shape_within_the_limits(world: CoreWorld) -> None:
    policy = world.bot.policy
    assert restyle_size(1000, 1000, policy) == (512, 512)
    assert restyle_size(600, 400, policy) == (512, 344)
    assert restyle_size(4000, 500, policy) == (1024, 256)  # the long side at most max_size


async def test_upscale_queues_twice_the_size_from_the_stored_output_in_its_style(
    world: CoreWorld,
) -> None:
    await trained_style(world)
    await world.bot.handle(Imagine(ALICE, "a lighthouse", style="ink", seed=8))
    [made] = world.queue.generate_jobs
    output_id = await deliver(world, made, png((1, 2, 3), size=256))
    stored = await world.uow.outputs.get_output(output_id)
    assert stored is not None

    queued = await world.bot.handle(UpscaleOutput(ALICE, output_id))
    assert isinstance(queued, JobQueued), queued
    assert queued.text.startswith(f"Upscaling output {output_id} to 1024x1024 in style ink")
    job = world.queue.generate_jobs[-1]
    assert (job.width, job.height) == (made.width * 2, made.height * 2)
    assert (job.source_key, job.source_output_id) == (stored.blob_key, output_id)
    assert job.strength == UPSCALE_STRENGTH
    assert (job.prompt, job.seed, job.lora_key) == (made.prompt, made.seed, made.lora_key)


async def test_upscale_is_refused_past_the_largest_size_or_to_others_private_images(
    world: CoreWorld,
) -> None:
    await trained_style(world)
    await world.bot.handle(Imagine(ALICE, "a lighthouse", style="ink", width=768))
    [made] = world.queue.generate_jobs
    output_id = await deliver(world, made, png((1, 2, 3), size=256))
    too_big = await world.bot.handle(UpscaleOutput(ALICE, output_id))
    assert isinstance(too_big, ErrorReply)
    assert "1536x1024" in too_big.text
    private = await world.bot.handle(UpscaleOutput(BOB, output_id))
    assert isinstance(private, ErrorReply)
    assert len(world.queue.generate_jobs) == 1


@pytest.mark.parametrize(
    ("size", "how", "canvas", "box"),
    [
        ((256, 256), "zoom2", (512, 512), (128, 128, 256, 256)),
        ((256, 256), "zoom1.5", (384, 384), (64, 64, 256, 256)),
        ((512, 256), "square", (512, 512), (0, 128, 512, 256)),
        ((256, 256), "portrait", (256, 384), (0, 64, 256, 256)),
        # Past the largest size: all of it smaller, the image with it.
        ((768, 768), "zoom2", (1024, 1024), (256, 256, 512, 512)),
    ],
)
def test_extend_geometry_places_the_image_on_a_canvas_within_the_limits(
    world: CoreWorld,
    size: tuple[int, int],
    how: str,
    canvas: tuple[int, int],
    box: tuple[int, int, int, int],
) -> None:
    assert extend_geometry(*size, how, world.bot.policy) == (*canvas, box)


def test_extending_to_a_shape_it_has_already_is_refused(world: CoreWorld) -> None:
    assert extend_geometry(256, 256, "square", world.bot.policy) == "That image is square already."
    assert "portrait-shaped" in str(extend_geometry(256, 384, "portrait", world.bot.policy))


async def test_extend_queues_the_stored_output_on_a_larger_canvas(world: CoreWorld) -> None:
    await trained_style(world)
    await world.bot.handle(Imagine(ALICE, "a lighthouse", style="ink", width=256, height=256))
    [made] = world.queue.generate_jobs
    output_id = await deliver(world, made, png((1, 2, 3), size=256))
    stored = await world.uow.outputs.get_output(output_id)
    assert stored is not None
    queued = await world.bot.handle(ExtendOutput(ALICE, output_id, "zoom2"))
    assert isinstance(queued, JobQueued), queued
    assert queued.text.startswith(f"Extending output {output_id}, zoomed out 2x (512x512)")
    job = world.queue.generate_jobs[-1]
    assert (job.width, job.height, job.keep_box) == (512, 512, (128, 128, 256, 256))
    assert (job.source_key, job.source_output_id, job.strength) == (stored.blob_key, output_id, 1.0)
    refused = await world.bot.handle(ExtendOutput(BOB, output_id, "zoom2"))
    assert isinstance(refused, ErrorReply)


async def test_repaint_queues_the_region_in_pixels_of_the_picture(world: CoreWorld) -> None:
    await trained_style(world)
    queued = await world.bot.handle(
        restyle(
            picture(400, 200), prompt="a red door", rights_confirmed=True, region=(25, 50, 50, 50)
        )
    )
    assert isinstance(queued, JobQueued), queued
    assert queued.text.startswith("Repainting a region of your picture in style ink")
    job = world.queue.generate_jobs[-1]
    assert (job.width, job.height) == (512, 256)
    assert job.repaint_box == (128, 128, 256, 128)
    assert (job.keep_box, job.strength) == (None, 1.0)


@pytest.mark.parametrize("region", [(-1, 0, 10, 10), (50, 50, 60, 10), (0, 0, 0, 10)])
async def test_a_region_outside_the_picture_is_refused(
    world: CoreWorld, region: tuple[float, float, float, float]
) -> None:
    await trained_style(world)
    refused = await world.bot.handle(restyle(picture(), rights_confirmed=True, region=region))
    assert isinstance(refused, ErrorReply)
    assert "region is left,top,width,height in percent" in refused.text
    assert world.queue.generate_jobs == []


async def test_extend_of_a_picture_queues_its_canvas(world: CoreWorld) -> None:
    await trained_style(world)
    queued = await world.bot.handle(
        restyle(picture(256, 256), rights_confirmed=True, extend="zoom2")
    )
    assert isinstance(queued, JobQueued), queued
    job = world.queue.generate_jobs[-1]
    # The picture at the default size (512), zoomed out 2x past the largest size (1024):
    # all of it at 1024, the picture 512 in the middle.
    assert (job.width, job.height, job.keep_box) == (1024, 1024, (256, 256, 512, 512))
    asked = await world.bot.handle(restyle(picture(256, 256), extend="square"))
    assert isinstance(asked, ErrorReply)
    [named] = mentions_in(asked.text)
    assert (named.command, named.options) == (
        CommandName.EXTEND,
        (("style", "NAME"), ("confirm", "yes")),
    )


def test_typed_extend_and_repaint_read_their_options() -> None:
    extend = parse_restyle("a.png style:ink zoom:1.5 misty hills", "extend")
    assert (extend.words, extend.style, extend.extend) == (
        ("a.png", "misty", "hills"),
        "ink",
        "zoom1.5",
    )
    assert parse_restyle("style:ink", "extend").extend == "zoom2"
    assert parse_restyle("style:ink shape:portrait", "extend").extend == "portrait"
    repaint = parse_restyle("style:ink region:10,20,30,40.5 a door", "repaint")
    assert repaint.region == (10, 20, 30, 40.5)
    for bad, verb in [
        ("style:ink zoom:3", "extend"),
        ("style:ink shape:round", "extend"),
        ("style:ink zoom:2 shape:square", "extend"),
        ("style:ink a door", "repaint"),
        ("style:ink region:1,2,3", "repaint"),
    ]:
        with pytest.raises(CommandSyntaxError):
            parse_restyle(bad, verb)


async def test_vary_of_a_restyle_draws_again_from_the_picture_with_a_new_seed(
    world: CoreWorld,
) -> None:
    """The image pipelines take no starting noise: the same seed would give the same image."""
    await trained_style(world)
    await world.bot.handle(restyle(picture(), rights_confirmed=True))
    [job] = world.queue.generate_jobs
    await world.bot.handle(VaryOutput(ALICE, job.output_ids[0]))
    varied = world.queue.generate_jobs[-1]
    assert varied.source_key == job.source_key
    assert varied.seed != job.seed
    assert varied.variation_seed is None


def mask_png(width: int, height: int, white: tuple[int, int, int, int], mode: str = "L") -> bytes:
    """A mask `width` x `height`, white in the box (left, top, right, bottom), else black
    (or, in RGBA, transparent: what a drawing program saves of a painted layer)."""
    mask = Image.new(mode, (width, height), 0)
    mask.paste(255 if mode == "L" else (255, 255, 255, 255), white)
    buffer = io.BytesIO()
    mask.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["L", "RGBA"])
async def test_repaint_by_a_mask_stores_it_scaled_and_thresholded_for_the_job(
    world: CoreWorld, mode: str
) -> None:
    await trained_style(world)
    # The mask at half the picture's size, white over its right half.
    mask = IncomingFile("mask.png", mask_png(200, 100, (100, 0, 200, 100), mode))
    queued = await world.bot.handle(
        restyle(picture(400, 200), prompt="a red door", rights_confirmed=True, mask=mask)
    )
    assert isinstance(queued, JobQueued), queued
    assert queued.text.startswith("Repainting the masked part of your picture in style ink")
    job = world.queue.generate_jobs[-1]
    assert (job.width, job.height, job.strength, job.repaint_box) == (512, 256, 1.0, None)
    assert job.mask_key is not None
    with Image.open(io.BytesIO(world.blobs.blobs[job.mask_key])) as stored:
        assert stored.size == (512, 256)
        levels = np.asarray(stored.convert("L"))
    assert set(np.unique(levels)) == {0, 255}
    assert (levels[:, 260:] == 255).all()
    assert (levels[:, :252] == 0).all()
    # A re-roll repaints the same part again.
    await world.bot.handle(RerollOutput(ALICE, job.output_ids[0]))
    assert world.queue.generate_jobs[-1].mask_key == job.mask_key


@pytest.mark.parametrize(
    ("box", "said"),
    [((0, 0, 0, 0), "has no white in it"), ((0, 0, 200, 100), "white all over")],
)
async def test_an_empty_or_full_mask_is_refused(
    world: CoreWorld, box: tuple[int, int, int, int], said: str
) -> None:
    await trained_style(world)
    blobs_before = set(world.blobs.blobs)
    mask = IncomingFile("mask.png", mask_png(200, 100, box))
    refused = await world.bot.handle(restyle(picture(), rights_confirmed=True, mask=mask))
    assert isinstance(refused, ErrorReply)
    assert said in refused.text
    assert world.queue.generate_jobs == []
    assert set(world.blobs.blobs) == blobs_before


async def test_a_mask_that_is_not_an_image_or_too_large_is_refused(world: CoreWorld) -> None:
    await trained_style(world)
    for data, said in [
        (b"GIF89a not a mask", "a GIF image"),
        (mask_png(9000, 64, (0, 0, 10, 10)), "pixels"),
    ]:
        refused = await world.bot.handle(
            restyle(picture(), rights_confirmed=True, mask=IncomingFile("m.png", data))
        )
        assert isinstance(refused, ErrorReply)
        assert refused.text.startswith("The mask m.png:")
        assert said in refused.text
    both = await world.bot.handle(
        restyle(
            picture(),
            rights_confirmed=True,
            region=(0, 0, 50, 50),
            mask=IncomingFile("m.png", mask_png(64, 64, (0, 0, 10, 10))),
        )
    )
    assert isinstance(both, ErrorReply)
    assert "not both" in both.text
    assert world.queue.generate_jobs == []


def test_typed_repaint_reads_a_mask_path() -> None:
    repaint = parse_restyle("a.png style:ink mask:hole.png a door", "repaint")
    assert (repaint.words, repaint.mask_path, repaint.region) == (
        ("a.png", "a", "door"),
        "hole.png",
        None,
    )
    with pytest.raises(CommandSyntaxError):
        parse_restyle("a.png style:ink mask:m.png region:1,2,3,4", "repaint")


def test_a_platform_that_brings_the_mask_needs_no_region() -> None:
    attached = parse_restyle("style:ink a door", "repaint", mask_attached=True)
    assert (attached.region, attached.mask_path, attached.words) == (None, None, ("a", "door"))
    typed = parse_restyle("style:ink region:1,2,3,4 a door", "repaint", mask_attached=True)
    assert typed.region == (1, 2, 3, 4)


def cropped(data: bytes, keep: float) -> bytes:
    """The picture with its right side cut off, keeping `keep` of its width."""
    with Image.open(io.BytesIO(data)) as image:
        kept = image.crop((0, 0, round(image.width * keep), image.height))
        buffer = io.BytesIO()
        kept.save(buffer, "PNG")
        return buffer.getvalue()


def marked_picture(seed: int) -> bytes:
    """A 256x256 picture with texture everywhere and (1, 2, 3) at its top left, which the
    fake watermark reads."""
    with Image.open(io.BytesIO(picture(256, 256, seed=seed))) as image:
        rgb = image.convert("RGB")
        rgb.putpixel((0, 0), (1, 2, 3))
        buffer = io.BytesIO()
        rgb.save(buffer, "PNG")
        return buffer.getvalue()


async def test_a_crop_of_an_output_is_restyled_as_cropped_not_as_the_whole_output(
    world: CoreWorld,
) -> None:
    """The member asked for *this* picture: a crop of their output is what is drawn
    again (traced to the output, so nothing to confirm), not the whole output."""
    await trained_style(world)
    await world.bot.handle(Imagine(ALICE, "a lighthouse", style="ink"))
    [made] = world.queue.generate_jobs
    world.watermark.ids[(1, 2, 3)] = made.output_ids[0]
    whole = marked_picture(seed=9)
    output_id = await deliver(world, made, whole)
    stored_key = (await world.uow.outputs.get_output(output_id)).blob_key  # type: ignore[union-attr]

    part = cropped(whole, 0.75)
    traced = await world.bot.handle(Verify(ALICE, IncomingFile("part.png", part)))
    assert isinstance(traced, VerifyReport), traced
    assert traced.shown_percent == 75
    queued = await world.bot.handle(restyle(part))
    assert isinstance(queued, JobQueued), queued
    job = world.queue.generate_jobs[-1]
    assert job.source_output_id == output_id
    assert job.source_key != stored_key
    with Image.open(io.BytesIO(world.blobs.blobs[job.source_key])) as source:  # type: ignore[index]
        assert source.size == (192, 256)
    assert job.width < job.height  # the crop's shape, not the square output's
    assert await image_use_entries(world) == []  # traced to their own output
