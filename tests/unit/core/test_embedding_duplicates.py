"""Near-duplicates by image embedding in the core: with a CLIP model configured, an upload
queues a compare job for the waiting images, and the pairs its result names are told to
the member, unless the perceptual hash named them already or they no longer wait."""

from __future__ import annotations

import dataclasses

import pytest
from tests.fakes.core import CoreWorld, png
from tests.unit.core.test_captions import ALICE
from tests.unit.core.test_near_duplicates import scene

from stylebot.bot.core.commands import IncomingFile, UploadImages
from stylebot.bot.core.replies import ConsentRequest, TextReply
from stylebot.queue.payloads import CompareResult, JobEvent


@pytest.fixture
def comparing(world: CoreWorld) -> CoreWorld:
    world.bot.policy = dataclasses.replace(world.bot.policy, clip_configured=True)
    return world


async def _upload(world: CoreWorld, *colours: tuple[int, int, int]) -> ConsentRequest:
    files = tuple(IncomingFile(f"img{c[0]}.png", png(c)) for c in colours)
    reply = await world.bot.handle(UploadImages(ALICE, files))
    assert isinstance(reply, ConsentRequest), reply
    return reply


async def _finished(world: CoreWorld, *pairs: tuple[str, str, float]) -> list[object]:
    job = world.queue.compare_jobs[-1]
    result = CompareResult(tuple(pairs), 0.2, "tiny-clip")
    event = JobEvent(job.job_id, "compare", "finished", result=result.to_dict())
    return [n.reply for n in await world.bot.handle_event(JobEvent.from_json(event.to_json()))]


async def test_without_a_clip_model_nothing_is_queued(world: CoreWorld) -> None:
    await _upload(world, (10, 20, 30), (200, 40, 40))

    assert world.queue.compare_jobs == []


async def test_each_upload_compares_its_images_with_those_waiting(comparing: CoreWorld) -> None:
    await _upload(comparing, (10, 20, 30))
    assert comparing.queue.compare_jobs == []  # one image: nothing to compare
    await _upload(comparing, (200, 40, 40), (0, 120, 250))

    [job] = comparing.queue.compare_jobs
    user = await comparing.uow.users.get_or_create_user("discord", "alice", "Alice")
    waiting = await comparing.uow.uploads.pending_uploads(user.id)
    assert job.image_keys == tuple(u.blob_key for u in waiting)
    assert job.first_new == 1
    assert job.owner is not None


async def test_pairs_alike_by_content_are_told_once_and_only_while_waiting(
    comparing: CoreWorld,
) -> None:
    await _upload(comparing, (10, 20, 30), (200, 40, 40), (0, 120, 250))
    user = await comparing.uow.users.get_or_create_user("discord", "alice", "Alice")
    a, _, c = (u.blob_key for u in await comparing.uow.uploads.pending_uploads(user.id))

    [note] = await _finished(comparing, (a, c, 0.97), (a, "f" * 64, 0.99))

    assert isinstance(note, TextReply)
    assert note.private
    assert "“img0.png” and “img10.png”" in note.text  # (a, c); the unknown key is left out
    assert "img200.png" not in note.text
    # Nothing alike: nothing said.
    await _upload(comparing, (90, 90, 90))
    assert await _finished(comparing) == []


async def test_a_pair_the_perceptual_hash_named_is_not_named_again(
    comparing: CoreWorld,
) -> None:
    # The same picture a little darker: a perceptual-hash near-duplicate, named in the answer.
    files = (
        IncomingFile("harbour.png", scene((200, 40, 40))),
        IncomingFile("harbour-2.png", scene((190, 38, 38))),
    )
    answer = await comparing.bot.handle(UploadImages(ALICE, files))
    assert isinstance(answer, ConsentRequest)
    assert "look nearly the same" in answer.text
    user = await comparing.uow.users.get_or_create_user("discord", "alice", "Alice")
    a, b = (u.blob_key for u in await comparing.uow.uploads.pending_uploads(user.id))

    assert await _finished(comparing, (a, b, 0.999)) == []
