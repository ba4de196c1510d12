"""/imagine aspect: a shape instead of a size, worked out by the core from the policy."""

from __future__ import annotations

import dataclasses

import pytest
from tests.fakes.core import CoreWorld, person

from stylebot.bot.core.commands import Imagine
from stylebot.bot.core.errors import CommandSyntaxError
from stylebot.bot.core.generation import aspect_size
from stylebot.bot.core.grammar import parse_imagine
from stylebot.bot.core.replies import ErrorReply, JobQueued

ALICE = person("alice")


@pytest.mark.parametrize(
    ("aspect", "default_size", "max_size", "expected"),
    [
        ("square", 512, 1024, (512, 512)),
        ("portrait", 512, 1024, (512, 768)),
        ("landscape", 512, 1024, (768, 512)),
        # SDXL-sized default: 1.5x would pass the largest size, so the short side gives.
        ("portrait", 1024, 1024, (680, 1024)),
        ("landscape", 1024, 1280, (1280, 856)),
    ],
)
def test_shapes_are_multiples_of_8_within_the_largest_size(
    aspect: str, default_size: int, max_size: int, expected: tuple[int, int]
) -> None:
    width, height = aspect_size(aspect, default_size, max_size)
    assert (width, height) == expected
    assert width % 8 == 0
    assert height % 8 == 0
    assert max(width, height) <= max_size


async def test_portrait_on_an_sdxl_sized_default_is_queued_not_refused(world: CoreWorld) -> None:
    world.bot.policy = dataclasses.replace(world.bot.policy, default_size=1024, max_size=1024)
    queued = await world.bot.handle(Imagine(ALICE, "a tall tower", aspect="portrait"))
    assert isinstance(queued, JobQueued), queued
    (job,) = world.queue.generate_jobs
    assert (job.width, job.height) == (680, 1024)


async def test_a_shape_and_a_size_together_or_an_unknown_shape_are_refused(
    world: CoreWorld,
) -> None:
    both = await world.bot.handle(Imagine(ALICE, "a boat", aspect="portrait", width=512))
    assert isinstance(both, ErrorReply)
    assert "not both" in both.text
    odd = await world.bot.handle(Imagine(ALICE, "a boat", aspect="round"))
    assert isinstance(odd, ErrorReply)
    assert "square, portrait, landscape" in odd.text
    assert world.queue.generate_jobs == []


def test_typed_commands_take_the_shape_too() -> None:
    command = parse_imagine("a red barn aspect:Landscape seed:3").command(ALICE)
    assert command == Imagine(ALICE, "a red barn", seed=3, aspect="landscape")
    with pytest.raises(CommandSyntaxError):
        parse_imagine("a red barn seed:three")
