"""The quota and rate-limit rules at their edges: exactly at a limit, a limit of 0
(unlimited), an admin's quota against the operator's, the day's and the window's ends,
and the exact texts people read. Calls the rule functions on the in-memory usage log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.fakes.admin import FakeAdminStore, FakeTrainingSwitch, FakeWorkerDirectory
from tests.fakes.core import person
from tests.fakes.safety import SafetyWorld
from tests.unit.safety.test_quotas import world

from stylebot.bot.core.admin_ports import GLOBAL_SCOPE, AdminPorts, parse_operators
from stylebot.bot.core.quotas import (
    ERASE,
    GENERATE,
    TRAIN,
    admit_erasure,
    admit_generation,
    blocked_phrase,
    check_allowance,
    rate_limited,
    record_usage,
    usage_counted_since,
)
from stylebot.bot.core.replies import ErrorReply

ALICE = person("alice", server="guild-1")
BOB = person("bob", server="guild-1")
ALICE_DM = person("alice", server=None)


async def use(w: SafetyWorld, who: object, kind: str, amount: int) -> None:
    await record_usage(w.bot.deps, who, kind, amount)  # type: ignore[arg-type]


def text(reply: ErrorReply | None) -> str:
    assert isinstance(reply, ErrorReply), reply
    return reply.text


def test_a_users_key_names_the_platform() -> None:
    assert ALICE.user_key == "discord:alice"
    assert person("alice", platform="telegram").user_key == "telegram:alice"


async def test_usage_is_recorded_with_who_where_how_much_and_when() -> None:
    w = world()
    await use(w, ALICE, GENERATE, 3)
    assert w.usage.events == [(GENERATE, "discord:alice", "discord:guild-1", 3, w.clock.current)]


@pytest.mark.parametrize(
    ("used", "asked", "allowed"), [(3, 2, True), (3, 3, False), (0, 5, True), (0, 6, False)]
)
async def test_a_users_quota_allows_exactly_up_to_the_limit(
    used: int, asked: int, allowed: bool
) -> None:
    w = world(images_per_user_per_day=5, images_per_server_per_day=0)
    if used:
        await use(w, ALICE, GENERATE, used)
    reply = await check_allowance(w.bot.deps, ALICE, GENERATE, asked)
    assert (reply is None) is allowed


async def test_a_users_quota_refusal_says_what_was_used_and_asked() -> None:
    w = world(images_per_user_per_day=5, images_per_server_per_day=0)
    await use(w, ALICE, GENERATE, 4)
    assert text(await check_allowance(w.bot.deps, ALICE, GENERATE, 2)) == (
        "You have used 4 of your 5 images for the last 24 hours, and this asks for 2 "
        "more. Try again later."
    )
    await use(w, ALICE, GENERATE, 1)
    assert text(await check_allowance(w.bot.deps, ALICE, GENERATE, 1)) == (
        "You have used 5 of your 5 images for the last 24 hours. Try again later."
    )


@pytest.mark.parametrize(("used", "asked", "allowed"), [(4, 2, True), (4, 3, False), (6, 1, False)])
async def test_a_servers_quota_allows_exactly_up_to_the_limit(
    used: int, asked: int, allowed: bool
) -> None:
    w = world(images_per_user_per_day=0, images_per_server_per_day=6)
    await use(w, ALICE, GENERATE, used)
    reply = await check_allowance(w.bot.deps, BOB, GENERATE, asked)
    assert (reply is None) is allowed


async def test_a_servers_quota_refusal_says_what_the_server_used_and_asked() -> None:
    w = world(images_per_user_per_day=0, images_per_server_per_day=6)
    await use(w, ALICE, GENERATE, 4)
    assert text(await check_allowance(w.bot.deps, BOB, GENERATE, 3)) == (
        "This server has used 4 of its 6 images for the last 24 hours, and this asks for "
        "3 more. Try again later."
    )
    await use(w, ALICE, GENERATE, 2)
    assert text(await check_allowance(w.bot.deps, BOB, GENERATE, 1)) == (
        "This server has used 6 of its 6 images for the last 24 hours. Try again later."
    )


@pytest.mark.parametrize("limit", [0, -1])
async def test_a_limit_of_zero_or_less_means_no_limit(limit: int) -> None:
    w = world(images_per_user_per_day=limit, images_per_server_per_day=limit)
    await use(w, ALICE, GENERATE, 1000)
    assert await check_allowance(w.bot.deps, ALICE, GENERATE, 1) is None


async def test_a_limit_of_one_is_a_limit() -> None:
    w = world(images_per_user_per_day=1, images_per_server_per_day=0)
    assert await check_allowance(w.bot.deps, ALICE, GENERATE, 1) is None
    await use(w, ALICE, GENERATE, 1)
    assert await check_allowance(w.bot.deps, ALICE, GENERATE, 1) is not None
    w = world(images_per_user_per_day=0, images_per_server_per_day=1)
    await use(w, ALICE, GENERATE, 1)
    assert await check_allowance(w.bot.deps, BOB, GENERATE, 1) is not None


async def test_a_server_quota_does_not_apply_in_a_direct_message() -> None:
    w = world(images_per_user_per_day=0, images_per_server_per_day=2)
    await use(w, ALICE_DM, GENERATE, 2)
    assert await check_allowance(w.bot.deps, ALICE_DM, GENERATE, 1) is None


async def test_trainings_and_images_have_their_own_limits_and_counts() -> None:
    w = world(
        images_per_user_per_day=100,
        images_per_server_per_day=0,
        trainings_per_user_per_day=1,
        trainings_per_server_per_day=0,
    )
    await use(w, ALICE, GENERATE, 50)
    assert await check_allowance(w.bot.deps, ALICE, TRAIN, 1) is None
    await use(w, ALICE, TRAIN, 1)
    assert text(await check_allowance(w.bot.deps, ALICE, TRAIN, 1)) == (
        "You have used 1 of your 1 trainings for the last 24 hours. Try again later."
    )
    assert await check_allowance(w.bot.deps, ALICE, GENERATE, 50) is None
    w = world(
        images_per_user_per_day=0,
        images_per_server_per_day=0,
        trainings_per_user_per_day=0,
        trainings_per_server_per_day=2,
    )
    await use(w, BOB, TRAIN, 2)
    assert text(await check_allowance(w.bot.deps, ALICE, TRAIN, 1)) == (
        "This server has used 2 of its 2 trainings for the last 24 hours. Try again later."
    )


async def test_a_quota_counts_the_last_24_hours_only() -> None:
    w = world(images_per_user_per_day=2, images_per_server_per_day=2)
    await use(w, ALICE, GENERATE, 2)
    w.clock.current += timedelta(hours=23, minutes=59)
    assert await check_allowance(w.bot.deps, ALICE, GENERATE, 1) is not None
    w.clock.current += timedelta(minutes=1)
    assert await check_allowance(w.bot.deps, ALICE, GENERATE, 2) is None


async def with_admin_quota(w: SafetyWorld, per_day: int) -> None:
    store = FakeAdminStore()
    w.bot.deps.admin = AdminPorts(
        store, FakeTrainingSwitch(), FakeWorkerDirectory(), parse_operators("discord:root")
    )
    await store.set_quota(GLOBAL_SCOPE, GENERATE, per_day, "discord:root", w.clock.now())


@pytest.mark.parametrize(
    ("operator_limit", "admin_limit", "allowed_images"),
    [(5, 3, 3), (3, 5, 3), (1, 5, 1), (0, 4, 4)],
)
async def test_an_admin_quota_only_makes_the_operators_stricter(
    operator_limit: int, admin_limit: int, allowed_images: int
) -> None:
    w = world(images_per_user_per_day=operator_limit, images_per_server_per_day=0)
    await with_admin_quota(w, admin_limit)
    assert await check_allowance(w.bot.deps, ALICE, GENERATE, allowed_images) is None
    assert text(await check_allowance(w.bot.deps, ALICE, GENERATE, allowed_images + 1)) == (
        f"You have used 0 of your {allowed_images} images for the last 24 hours, and this "
        f"asks for {allowed_images + 1} more. Try again later."
    )


@pytest.mark.parametrize(("window_s", "counted_for"), [(60, timedelta(days=1)), (172800, None)])
async def test_usage_counts_for_a_day_or_a_longer_rate_window(
    window_s: int, counted_for: timedelta | None
) -> None:
    w = world(rate_window_s=window_s)
    since = usage_counted_since(w.bot.deps)
    assert w.clock.current - since == (counted_for or timedelta(seconds=window_s))


async def test_the_rate_limit_allows_exactly_its_number_of_requests() -> None:
    w = world(requests_per_window=2, rate_window_s=60)
    deps = w.bot.deps
    await use(w, ALICE, GENERATE, 1)
    assert await rate_limited(deps, ALICE) is None
    await use(w, ALICE, TRAIN, 1)
    assert text(await rate_limited(deps, ALICE, w.clock.current)) == (
        "You're sending requests too quickly (at most 2 every 60 s). Try again in 58 s."
    )
    # check_allowance applies it too, before any quota, at the moment it judges the
    # request (the clock here moves a second each time it is read).
    assert text(await check_allowance(deps, ALICE, GENERATE, 1)) == (
        "You're sending requests too quickly (at most 2 every 60 s). Try again in 57 s."
    )
    assert await rate_limited(deps, BOB) is None


async def test_the_wait_counts_from_the_oldest_request_still_in_the_window() -> None:
    w = world(requests_per_window=2, rate_window_s=60)
    deps = w.bot.deps
    await use(w, ALICE, GENERATE, 1)  # at t0
    w.clock.current += timedelta(seconds=19)
    await use(w, ALICE, GENERATE, 1)  # at t0 + 20 s
    w.clock.current += timedelta(seconds=9)
    await use(w, ALICE, GENERATE, 1)  # at t0 + 30 s: two in the window from t0 + 20 s
    now = w.clock.current + timedelta(seconds=10)  # t0 + 40 s
    assert "Try again in 40 s." in text(await rate_limited(deps, ALICE, now))
    # Less than a second to go, or none at all, still says 1 s, never 0.
    second = w.clock.current - timedelta(seconds=10)
    almost = second + timedelta(seconds=59, milliseconds=500)
    assert "Try again in 1 s." in text(await rate_limited(deps, ALICE, almost))
    assert "Try again in 1 s." in text(
        await rate_limited(deps, ALICE, second + timedelta(seconds=60))
    )


@pytest.mark.parametrize("requests", [0, -1])
async def test_a_rate_limit_of_zero_or_less_is_off(requests: int) -> None:
    w = world(requests_per_window=requests)
    await use(w, ALICE, GENERATE, 1)
    assert await rate_limited(w.bot.deps, ALICE) is None


async def test_a_rate_limit_of_one_request() -> None:
    w = world(requests_per_window=1, rate_window_s=10)
    assert await rate_limited(w.bot.deps, ALICE) is None
    await use(w, ALICE, GENERATE, 1)
    assert await rate_limited(w.bot.deps, ALICE) is not None


async def test_erasures_are_allowed_exactly_up_to_the_limit() -> None:
    w = world(erasures_per_user_per_day=2)
    await use(w, ALICE, ERASE, 1)
    assert await admit_erasure(w.bot.deps, ALICE) is None
    await use(w, ALICE, ERASE, 1)
    assert text(await admit_erasure(w.bot.deps, ALICE)) == (
        "You have deleted styles or erased your data 2 times in the last 24 hours "
        "(at most 2). Try again later."
    )
    assert await admit_erasure(w.bot.deps, BOB) is None
    w.clock.current += timedelta(hours=23, minutes=59)
    assert await admit_erasure(w.bot.deps, ALICE) is not None
    w.clock.current += timedelta(minutes=1)
    assert await admit_erasure(w.bot.deps, ALICE) is None


@pytest.mark.parametrize(("limit", "allowed"), [(0, True), (-1, True), (1, False)])
async def test_an_erasure_limit_of_zero_or_less_is_off(limit: int, allowed: bool) -> None:
    w = world(erasures_per_user_per_day=limit)
    await use(w, ALICE, ERASE, 1)
    assert (await admit_erasure(w.bot.deps, ALICE) is None) is allowed


async def test_a_generation_is_checked_for_the_blocklist_then_the_quota() -> None:
    w = world(images_per_user_per_day=1, prompt_blocklist=("gore",))
    assert text(await admit_generation(w.bot.deps, ALICE, "GORE scene", 1)) == (
        "Your prompt contains 'gore', which this server does not allow. "
        "Nothing was queued; rephrase it."
    )
    assert await admit_generation(w.bot.deps, ALICE, "a boat", 1) is None
    assert await admit_generation(w.bot.deps, ALICE, "a boat", 2) is not None


@pytest.mark.parametrize(
    ("prompt", "blocklist", "found"),
    [
        ("gore", ("", "gore"), "gore"),  # an empty entry is skipped, not the end of the list
        ("i n k wash", ("ink",), "ink"),  # three letters spaced out
        ("x a b", ("ab",), None),  # two are too few to read as a word spelled out
        ("g o r e s c e n e", ("gore scene",), "gore scene"),  # a phrase spelled out
        ("N S F W", ("N.S.F.W",), "N.S.F.W"),  # the list's own entry comes back
        ("a boat", ("boat", "a"), "boat"),  # the first entry that matches
    ],
)
def test_the_blocklist_at_its_edges(
    prompt: str, blocklist: tuple[str, ...], found: str | None
) -> None:
    assert blocked_phrase(prompt, blocklist) == found
