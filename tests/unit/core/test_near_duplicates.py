"""Near-duplicate images in one set are pointed out to the member before training
(their perceptual hashes, as /optout and /verify compare copies)."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw
from tests.fakes.core import CoreWorld, person

from stylebot.bot.core.commands import IncomingFile, UploadImages
from stylebot.bot.core.replies import ConsentRequest

ALICE = person("alice")


async def test_near_duplicates_in_a_set_are_pointed_out_before_training(
    world: CoreWorld,
) -> None:
    harbour, lighthouse = scene((200, 40, 40)), scene((20, 40, 200), flip=True)
    first = await world.bot.handle(UploadImages(ALICE, (IncomingFile("harbour.png", harbour),)))
    # The same picture a little darker (re-saved, say), and another picture.
    again = await world.bot.handle(
        UploadImages(
            ALICE,
            (
                IncomingFile("harbour-2.png", scene((190, 38, 38))),
                IncomingFile("lighthouse.png", lighthouse),
            ),
        )
    )

    assert isinstance(first, ConsentRequest)
    assert "nearly the same" not in first.text
    assert isinstance(again, ConsentRequest)
    assert "“harbour-2.png” and “harbour.png”" in again.text
    assert "lighthouse.png" not in again.text


def scene(colour: tuple[int, int, int], *, flip: bool = False) -> bytes:
    """A picture with structure (a perceptual hash of a flat image says nothing)."""
    image = Image.new("RGB", (96, 96), (250, 250, 240))
    draw = ImageDraw.Draw(image)
    draw.rectangle((10, 50, 60, 90), fill=colour)
    draw.ellipse((55, 5, 90, 40), fill=(colour[2], colour[0], colour[1]))
    if flip:
        image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


async def test_a_lost_waiting_image_does_not_stop_the_next_upload(world: CoreWorld) -> None:
    await world.bot.handle(UploadImages(ALICE, (IncomingFile("harbour.png", scene((9, 9, 9))),)))
    world.blobs.blobs.clear()  # the waiting image's file is gone from the store

    reply = await world.bot.handle(
        UploadImages(ALICE, (IncomingFile("lighthouse.png", scene((20, 40, 200), flip=True)),))
    )

    assert isinstance(reply, ConsentRequest), reply
    assert reply.image_count == 2
