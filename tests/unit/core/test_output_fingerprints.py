"""Each delivered output keeps a fingerprint for /verify. The worker takes it from the
pixels it made and reports it with the result, so the front end records it without
decoding the PNG on the way of every result (issue 19: that decode was up to 60 ms per
1024x1024 image, in the one front end process). From a worker older than that report,
or a malformed one, the front end takes it from the PNG as before."""

from __future__ import annotations

from tests.fakes.core import person
from tests.support.verify_world import deliver, verify_world
from tests.unit.provenance.test_watermark import scene

from stylebot.bot.core.fingerprints import fingerprint_of_png
from stylebot.bot.core.perceptual import PerceptualHash, perceptual_hash

ALICE = person("alice")


async def _recorded(reported: str | None) -> tuple[str | None, str | None]:
    """The fingerprint recorded for an output delivered with `reported`, and the one
    its stored PNG gives."""
    world = verify_world()
    output_id = await deliver(
        world, ALICE, scene(256, 256, seed=5), reported_fingerprint=lambda _image: reported
    )
    record = await world.bot.deps.uow.outputs.get_output(output_id)
    assert record is not None
    assert record.blob_key is not None
    return record.fingerprint, fingerprint_of_png(await world.bot.deps.blobs.get(record.blob_key))


async def test_the_workers_fingerprint_is_recorded_as_reported() -> None:
    # Unlike the picture's in every bit: only taking the report records this one.
    picture_bits = perceptual_hash(scene(256, 256, seed=5)).value
    reported = PerceptualHash(~picture_bits & (2**64 - 1), informative=True).hex

    recorded, of_png = await _recorded(reported)

    assert recorded == reported
    assert recorded != of_png


async def test_without_a_reported_fingerprint_the_png_gives_it() -> None:
    recorded, of_png = await _recorded(None)
    assert recorded is not None
    assert recorded == of_png


async def test_a_malformed_reported_fingerprint_is_not_recorded() -> None:
    for malformed in ("", "not-a-hash", "0123456789ABCDEF", "0123456789abcdef00"):
        recorded, of_png = await _recorded(malformed)
        assert recorded == of_png, malformed
