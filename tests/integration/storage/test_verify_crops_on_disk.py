"""Issue 14 through the real stores: an output delivered into a real SQLite file and blob
directory, with its real watermark, then sent back to /verify cropped, rescaled, cropped
with something pasted over it, and as the same crop of another picture carrying its mark.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from tests.fakes.core import person
from tests.support.picture_edits import paste
from tests.support.verify_world import check, deliver, stored_picture, verify_world
from tests.unit.provenance.test_watermark import illustration, scene
from tests.unit.provenance.test_watermark_geometry import crop_left_tenth, rescaled

from stylebot.bot.core.replies import VerifyVerdict
from stylebot.provenance.watermark import embed_watermark
from stylebot.storage.blobs import LocalBlobStore
from stylebot.storage.unit_of_work import SqliteUnitOfWork

ALICE = person("alice")
BOB = person("bob")


async def test_crops_and_rescales_of_a_stored_output_verify_from_disk(tmp_path: Path) -> None:
    repo = await SqliteUnitOfWork.open(tmp_path / "stylebot.sqlite")
    try:
        world = verify_world(repo, LocalBlobStore(tmp_path / "blobs"))
        output_id = await deliver(world, ALICE, scene(640, 512, seed=71), "a harbour at dusk")
        made = await stored_picture(world, output_id)

        cropped = await check(world, BOB, crop_left_tenth(made))
        assert cropped.verdict is VerifyVerdict.MADE, cropped.text
        assert cropped.text.startswith(
            f"Made with stylebot: a cropped copy of output {output_id} (it shows 90% of "
            "that picture)\nby: <@alice>, named 'Alice' when it was made"
        ), cropped.text
        assert "prompt: a harbour at dusk" in cropped.text

        smaller = await check(world, BOB, rescaled(made, 0.7))
        assert smaller.verdict is VerifyVerdict.MADE, smaller.text
        assert smaller.text.startswith(
            f"Made with stylebot: a resized copy of output {output_id} (at 70% of its size)"
        ), smaller.text

        logo = illustration(72).resize((160, 160), Image.Resampling.LANCZOS)
        altered = await check(world, BOB, paste(crop_left_tenth(made), logo, 0.1))
        assert altered.verdict is VerifyVerdict.ALTERED, altered.text
        assert altered.output is None
        assert altered.differs_percent is not None
        assert 7 <= altered.differs_percent <= 16, altered.differs_percent
        assert f"cropped to 90% of it: about {altered.differs_percent}% of this" in altered.text

        forged = crop_left_tenth(embed_watermark(scene(640, 512, seed=73), output_id))
        stranger = await check(world, BOB, forged)
        assert stranger.verdict is VerifyVerdict.MISMATCH, stranger.text
        assert stranger.output is None
        for private in ("alice", "Alice", "harbour"):
            assert private not in stranger.text
    finally:
        await repo.close()
