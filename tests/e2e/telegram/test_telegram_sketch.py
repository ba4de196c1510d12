"""/sketch on Telegram end to end: a picture captioned so, the real adapter, core, worker,
tiny model and a tiny ControlNet; /verify as a reply names the picture it followed."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from tests.e2e.telegram.conftest import ReadyStyle
from tests.fakes.telegram_api import FakeTelegram, FakeUser
from tests.support.tiny_styles import quick_lora_bytes, striped_png

from stylebot.bootstrap import FrontEnd, PngWatermarkReader
from stylebot.bot.telegram.adapter import TelegramAdapter
from stylebot.config import Settings
from stylebot.provenance.metadata import read_png_metadata

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(settings: Settings, tiny_controlnet_dir: Path) -> Settings:
    """The Telegram stack's settings with /sketch's ControlNet configured (the worker's
    engine has it too: tests.support.stack.tiny_engine)."""
    return settings.replace(controlnet_edges=str(tiny_controlnet_dir))


async def test_a_picture_captioned_sketch_is_drawn_along_its_edges_and_verified(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    frontend: FrontEnd,
    tiny_engine: Any,
    ready_style: ReadyStyle,
    worker: None,
    one_torch_thread: None,
    ada: FakeUser,
    tmp_path: Path,
) -> None:
    await ready_style(ada, "ink", quick_lora_bytes(tiny_engine.pipeline, tmp_path / "lora"))
    chat = fake.private_chat(ada)
    await fake.send_document(
        chat,
        ada,
        striped_png(320, 192),
        "drawing.png",
        "image/png",
        caption="/sketch style:ink follow:depth a castle",
    )
    refused = await fake.wait_for_sent(chat, lambda m: "depth" in (m.text or ""), timeout=60)
    assert "can't follow the depth of a picture; use follow:edges" in (refused.text or "")

    await fake.send_document(
        chat,
        ada,
        striped_png(320, 192),
        "drawing.png",
        "image/png",
        caption="/sketch style:ink confirm:yes a castle on a hill",
    )
    sketched = await fake.wait_for_sent(chat, lambda m: m.document is not None, timeout=120)
    png = sketched.document_bytes
    assert png is not None
    assert "ControlNet 0: " in read_png_metadata(png)["parameters"]
    with Image.open(io.BytesIO(png)) as made:
        assert made.width > made.height
    output_id = PngWatermarkReader().read(png)
    assert output_id is not None

    await fake.reply(chat, ada, sketched, "/verify")
    report = await fake.wait_for_sent(chat, lambda m: "Made with stylebot" in (m.text or ""))
    assert f"output {output_id}" in (report.text or "")
    assert "its edges followed, weight 1" in (report.text or "")
