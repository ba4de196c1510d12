"""Quotas per user and server, the rate limit's "try again in N s", the prompt blocklist."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from tests.fakes.core import person
from tests.fakes.safety import SafetyWorld, safety_world
from tests.unit.safety.test_consent_evidence import painting

from stylebot.bot.core.commands import (
    ConfirmConsent,
    Imagine,
    IncomingFile,
    TrainStyle,
    UploadImages,
)
from stylebot.bot.core.policy import Policy
from stylebot.bot.core.quotas import blocked_phrase
from stylebot.bot.core.replies import ErrorReply, JobQueued
from stylebot.queue.payloads import JobEvent, TrainResult, TrainSettings

ALICE = person("alice", server="guild-1")
BOB = person("bob", server="guild-1")
CAROL_ELSEWHERE = person("carol", server="guild-2")
ALICE_DM = person("alice", server=None)


def world(**limits: object) -> SafetyWorld:
    defaults: dict[str, object] = {"requests_per_window": 0}
    return safety_world(
        Policy(base_model="tiny", train=TrainSettings(steps=10), **{**defaults, **limits})  # type: ignore[arg-type]
    )


async def imagine(w: SafetyWorld, who: object, count: int = 1, prompt: str = "a boat") -> object:
    return await w.bot.handle(Imagine(who, prompt, count=count))  # type: ignore[arg-type]


async def test_the_rate_limit_says_how_long_to_wait_and_lifts_after_it() -> None:
    w = world(requests_per_window=3, rate_window_s=60)
    for _ in range(3):
        assert isinstance(await imagine(w, ALICE), JobQueued)
    refused = await imagine(w, ALICE)
    assert isinstance(refused, ErrorReply)
    match = re.search(r"Try again in (\d+) s\.", refused.text)
    assert match is not None
    assert 50 <= int(match.group(1)) <= 60
    assert len(w.queue.generate_jobs) == 3
    assert isinstance(await imagine(w, BOB), JobQueued)  # per user, not global
    w.clock.current += timedelta(seconds=int(match.group(1)))
    assert isinstance(await imagine(w, ALICE), JobQueued)


async def test_a_users_daily_image_quota_counts_images_not_requests() -> None:
    w = world(images_per_user_per_day=5)
    assert isinstance(await imagine(w, ALICE, count=4), JobQueued)
    refused = await imagine(w, ALICE, count=2)
    assert isinstance(refused, ErrorReply)
    assert "used 4 of your 5 images" in refused.text
    assert "asks for 2 more" in refused.text
    assert isinstance(await imagine(w, ALICE, count=1), JobQueued)
    assert isinstance(await imagine(w, ALICE, count=1), ErrorReply)
    w.clock.current += timedelta(days=1)
    assert isinstance(await imagine(w, ALICE, count=4), JobQueued)


async def test_a_servers_quota_is_shared_by_its_members_and_not_by_others() -> None:
    w = world(images_per_server_per_day=6)
    assert isinstance(await imagine(w, ALICE, count=4), JobQueued)
    refused = await imagine(w, BOB, count=3)
    assert isinstance(refused, ErrorReply)
    assert "This server has used 4 of its 6 images" in refused.text
    assert isinstance(await imagine(w, CAROL_ELSEWHERE, count=4), JobQueued)
    assert isinstance(await imagine(w, ALICE_DM, count=4), JobQueued)  # no server in a DM


async def test_refused_requests_use_no_quota() -> None:
    w = world(images_per_user_per_day=2, prompt_blocklist=("gore",))
    assert isinstance(await imagine(w, ALICE, prompt="gore"), ErrorReply)
    assert isinstance(await imagine(w, ALICE, count=3), ErrorReply)
    assert w.usage.events == []
    assert isinstance(await imagine(w, ALICE, count=2), JobQueued)


async def train(w: SafetyWorld, name: str, seed: int) -> object:
    await w.bot.handle(UploadImages(ALICE, (IncomingFile("p.png", painting(seed)),)))
    await w.bot.handle(ConfirmConsent(ALICE, "own-work", True))
    return await w.bot.handle(TrainStyle(ALICE, name))


async def test_a_users_daily_training_quota() -> None:
    w = world(trainings_per_user_per_day=1)
    first = await train(w, "ink", 1)
    assert isinstance(first, JobQueued)
    result = TrainResult(lora_key="a" * 64, steps=10, final_loss=0.1, seconds=1.0)
    await w.bot.handle_event(JobEvent(first.job_id, "train", "finished", result=result.to_dict()))
    second = await train(w, "wash", 2)
    assert isinstance(second, ErrorReply)
    assert "used 1 of your 1 trainings" in second.text
    assert len(w.queue.train_jobs) == 1


@pytest.mark.parametrize(
    "prompt",
    [
        "NSFW art",
        "some n.s.f.w art",
        "Ｎｓｆｗ",
        "n s f w please",
        "a  GORE\tscene at night",
        "nsfw!",
        "Gore-Scene",
    ],
)
def test_the_blocklist_sees_through_case_width_punctuation_and_spacing(prompt: str) -> None:
    assert blocked_phrase(prompt, ("nsfw", "gore scene")) is not None


@pytest.mark.parametrize("prompt", ["a sunset", "classic glass", "scenery of gore-tex jackets"])
def test_the_blocklist_matches_whole_words_only(prompt: str) -> None:
    assert blocked_phrase(prompt, ("ass", "gore scene", "")) is None


async def test_a_blocklisted_prompt_is_refused_with_the_phrase_and_nothing_queued() -> None:
    w = world(prompt_blocklist=("nsfw",))
    refused = await imagine(w, ALICE, prompt="N.S.F.W picture")
    assert isinstance(refused, ErrorReply)
    assert "'nsfw'" in refused.text
    assert w.queue.generate_jobs == []
