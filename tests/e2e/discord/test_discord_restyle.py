"""/restyle and "Restyle with…" on Discord end to end: the real discord.py client
against the fake Discord, the real core, SQLite, Redis, an arq worker and the tiny model."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from tests.e2e.discord.conftest import StartWorker
from tests.e2e.discord.test_discord_bot import (
    CB_DEFERRED,
    CB_MODAL,
    EPHEMERAL,
    original_when,
)
from tests.fakes.discord_api import FakeChannel, FakeDiscord, FakeFile, FakeGuild, FakeUser
from tests.support.records import add_ready_style
from tests.support.tiny_styles import quick_lora_bytes, striped_png

from stylebot.bootstrap import FrontEnd, PngWatermarkReader
from stylebot.bot.discord.adapter import DiscordAdapter
from stylebot.provenance.metadata import read_png_metadata

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


async def test_restyle_an_attachment_then_from_the_context_menu_then_upscale_and_zoom_out(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
    tiny_engine: Any,
    start_worker: StartWorker,
    tmp_path: Path,
) -> None:
    weights = quick_lora_bytes(tiny_engine.pipeline, tmp_path / "lora")
    await add_ready_style(frontend, "discord", str(alice.id), "Alice", "ink", weights)
    await start_worker()
    synced = {c["name"]: c for c in fake.commands(guild.id)}
    options = {o["name"]: o for o in synced["restyle"]["options"]}
    assert options["style"]["autocomplete"] is True
    assert [c["value"] for c in options["confirm"]["choices"]] == ["yes"]
    picture = FakeFile("garden.png", striped_png(320, 192))

    # A picture of one's own: only with the member's confirmation, asked privately.
    asked = await fake.send_slash_command(
        guild.id, general.id, alice, "restyle", {"image": picture, "style": "ink"}
    )
    assert (await asked.callback()).json["type"] == CB_DEFERRED

    # Deferred in public, refused privately: the placeholder goes, a private follow-up says.
    def question() -> list[dict[str, Any]]:
        return [
            m
            for m in fake.messages.values()
            if "is not a stylebot image of yours" in (m.get("content") or "")
        ]

    await fake.wait_until(lambda: bool(question()), timeout=60, what="the question")
    [refusal] = question()
    assert refusal["flags"] & EPHEMERAL
    assert "/restyle style:NAME confirm:yes" in refusal["content"]

    made = await fake.send_slash_command(
        guild.id,
        general.id,
        alice,
        "restyle",
        {"image": picture, "style": "ink", "strength": 0.5, "confirm": "yes"},
    )
    await made.callback()
    result = await original_when(fake, made, lambda m: m["attachments"], "the restyle")
    png = fake.attachment_bytes(int(result["attachments"][0]["id"]))
    assert "Denoising strength: 0.5" in read_png_metadata(png)["parameters"]
    with Image.open(io.BytesIO(png)) as image:
        assert image.width > image.height
        image_size = image.size
    first_id = PngWatermarkReader().read(png)
    assert first_id is not None

    # "Restyle with…" on the result: a modal asks for the style; no confirmation needed.
    menu = await fake.send_message_command(
        guild.id, general.id, alice, "Restyle with…", int(result["id"])
    )
    assert (await menu.callback()).json["type"] == CB_MODAL
    submitted = await fake.submit_modal(menu, {"sb:restyle:style": "ink"})
    assert (await submitted.callback()).json["type"] == CB_DEFERRED
    again = await original_when(fake, submitted, lambda m: m["attachments"], "the second")
    second_id = PngWatermarkReader().read(fake.attachment_bytes(int(again["attachments"][0]["id"])))
    assert second_id is not None
    record = await frontend.uow.outputs.get_output(second_id)
    assert record is not None
    assert record.source_output_id == first_id

    # Upscale on the first result: twice its size, drawn again from it in its style.
    upscale = await fake.press_button(int(result["id"]), f"sb:upscale:{first_id}", alice)
    assert (await upscale.callback()).json["type"] == CB_DEFERRED
    bigger = await original_when(fake, upscale, lambda m: m["attachments"], "the upscale")
    with Image.open(io.BytesIO(fake.attachment_bytes(int(bigger["attachments"][0]["id"])))) as up:
        assert up.size == (image_size[0] * 2, image_size[1] * 2)

    # Zoom out 2x on the first result: twice the canvas, the image kept in the middle.
    zoom = await fake.press_button(int(result["id"]), f"sb:extend:zoom2:{first_id}", alice)
    assert (await zoom.callback()).json["type"] == CB_DEFERRED
    zoomed = await original_when(fake, zoom, lambda m: m["attachments"], "the zoom out")
    width, height = image_size
    with Image.open(io.BytesIO(fake.attachment_bytes(int(zoomed["attachments"][0]["id"])))) as out:
        assert out.size == (width * 2, height * 2)
        middle = np.asarray(out.convert("RGB"))[
            height // 2 : height // 2 + height, width // 2 : width // 2 + width
        ].astype(np.int16)
    with Image.open(io.BytesIO(png)) as first:
        kept = np.asarray(first.convert("RGB")).astype(np.int16)
    # Kept but for the new watermark's faint changes; the border is drawn anew.
    assert float(np.abs(middle - kept).mean()) < 4


async def test_repaint_takes_a_mask_attachment_and_refuses_an_empty_one(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
) -> None:
    """The mask option reaches the core as the second file: an all-black mask is refused
    (before any job, so no worker is needed)."""
    await add_ready_style(frontend, "discord", str(alice.id), "Alice", "ink", b"lora weights")
    options = {
        o["name"]: o for o in {c["name"]: c for c in fake.commands(guild.id)}["repaint"]["options"]
    }
    assert options["mask"]["type"] == 11  # an attachment
    assert not options["mask"].get("required")
    assert not options["region"].get("required")
    black = io.BytesIO()
    Image.new("L", (160, 96), 0).save(black, "PNG")
    repaint = await fake.send_slash_command(
        guild.id,
        general.id,
        alice,
        "repaint",
        {
            "image": FakeFile("garden.png", striped_png(320, 192)),
            "style": "ink",
            "prompt": "a red door",
            "mask": FakeFile("mask.png", black.getvalue()),
            "confirm": "yes",
        },
    )
    assert (await repaint.callback()).json["type"] == CB_DEFERRED

    def refusals() -> list[dict[str, Any]]:
        return [
            m for m in fake.messages.values() if "has no white in it" in (m.get("content") or "")
        ]

    await fake.wait_until(lambda: bool(refusals()), timeout=60, what="the refusal")
    member = await frontend.uow.users.find_user("discord", str(alice.id))
    assert member is not None
    assert await frontend.uow.outputs.user_outputs(member.id) == []  # nothing was queued
