"""A visitor (the public verify page) is told what /verify tells a stranger: a public
output's record in full, of a private one only who made it and when; and never more,
whatever key they come with."""

from __future__ import annotations

from tests.fakes.core import person
from tests.support.verify_world import check, deliver, stored_picture, verify_world
from tests.support.watermark_images import scene

from stylebot.bot.core.replies import VerifyVerdict
from stylebot.bot.core.visitors import visitor


async def test_a_visitor_reads_a_public_record_and_not_a_private_one() -> None:
    world = verify_world()
    public = await deliver(world, person("bob"), scene(512, 512, seed=61), "a lighthouse")
    private = await deliver(world, person("alice", server=None), scene(512, 512, seed=62), "hush")

    seen = await check(world, visitor("k1"), await stored_picture(world, public))
    assert seen.verdict is VerifyVerdict.MADE
    assert "prompt: a lighthouse" in seen.text

    hidden = await check(world, visitor("k1"), await stored_picture(world, private))
    assert hidden.verdict is VerifyVerdict.MADE
    assert "by: <@alice>" in hidden.text
    assert "hush" not in hidden.text
    assert not hidden.private
    assert hidden.output is None


async def test_a_visitor_is_nobodys_maker_even_under_a_recorded_key() -> None:
    """Should a record ever carry a visitor's platform and key (nothing writes one), a
    visitor with that key still sees what a stranger does."""
    world = verify_world()
    same_key = visitor("k2")
    output_id = await deliver(world, same_key, scene(512, 512, seed=63), "not for visitors")
    report = await check(world, same_key, await stored_picture(world, output_id))
    assert report.verdict is VerifyVerdict.MADE
    assert "not for visitors" not in report.text
    assert report.output is None
