"""/sketch on Discord end to end: the real discord.py client against the fake Discord, the
real core, SQLite, Redis, an arq worker, the tiny model and a tiny ControlNet."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from tests.e2e.discord.conftest import StartWorker
from tests.e2e.discord.test_discord_bot import CB_DEFERRED, CB_MODAL, original_when
from tests.fakes.discord_api import FakeChannel, FakeDiscord, FakeFile, FakeGuild, FakeUser
from tests.support.records import add_ready_style
from tests.support.tiny_styles import quick_lora_bytes, striped_png

from stylebot.bootstrap import FrontEnd, PngWatermarkReader
from stylebot.bot.discord.adapter import DiscordAdapter
from stylebot.config import Settings
from stylebot.provenance.metadata import read_png_metadata

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture
def settings(settings: Settings, tiny_controlnet_dir: Path) -> Settings:
    """The stack's settings with /sketch's ControlNet configured (the worker's engine has
    it too: tests.support.stack.tiny_engine)."""
    return settings.replace(controlnet_edges=str(tiny_controlnet_dir))


async def test_sketch_an_attachment_verify_it_then_follow_the_result_from_the_menu(
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
    options = {o["name"]: o for o in synced["sketch"]["options"]}
    assert [c["value"] for c in options["follow"]["choices"]] == ["edges", "depth"]
    assert options["prompt"]["required"] is True

    made = await fake.send_slash_command(
        guild.id,
        general.id,
        alice,
        "sketch",
        {
            "image": FakeFile("drawing.png", striped_png(320, 192)),
            "style": "ink",
            "prompt": "a castle on a hill",
            "confirm": "yes",
        },
    )
    assert (await made.callback()).json["type"] == CB_DEFERRED
    result = await original_when(fake, made, lambda m: m["attachments"], "the sketch")
    png = fake.attachment_bytes(int(result["attachments"][0]["id"]))
    assert "ControlNet 0: " in read_png_metadata(png)["parameters"]
    with Image.open(io.BytesIO(png)) as image:
        assert image.width > image.height  # the picture's shape
    output_id = PngWatermarkReader().read(png)
    assert output_id is not None
    record = await frontend.uow.outputs.get_output(output_id)
    assert record is not None
    assert record.follow == "edges"

    checked = await fake.send_slash_command(
        guild.id, general.id, alice, "verify", {"image": FakeFile("found.png", png)}
    )
    await checked.callback()
    report = await original_when(fake, checked, lambda m: m["content"], "the report", 30)
    assert f"output {output_id}" in report["content"]
    assert "made from: a picture its maker sent" in report["content"]
    assert "its edges followed, weight 1" in report["content"]

    # "Follow this sketch" on the result: a form asks for the style and what to draw.
    menu = await fake.send_message_command(
        guild.id, general.id, alice, "Follow this sketch", int(result["id"])
    )
    assert (await menu.callback()).json["type"] == CB_MODAL
    submitted = await fake.submit_modal(
        menu,
        {"sb:restyle:style": "ink", "sb:restyle:prompt": "a ship", "sb:restyle:strength": "0.5"},
    )
    assert (await submitted.callback()).json["type"] == CB_DEFERRED
    again = await original_when(fake, submitted, lambda m: m["attachments"], "the second")
    again_png = fake.attachment_bytes(int(again["attachments"][0]["id"]))
    second_id = PngWatermarkReader().read(again_png)
    assert second_id is not None
    second = await frontend.uow.outputs.get_output(second_id)
    assert second is not None
    assert (second.follow, second.source_output_id, second.denoising_strength) == (
        "edges",
        output_id,
        0.5,
    )
    assert "Weight: 0.5" in read_png_metadata(again_png)["parameters"]
