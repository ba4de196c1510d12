"""The console adapter: typed lines to commands, replies to text and files."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image
from tests.fakes.core import CoreWorld, png

from stylebot.bot.console.adapter import ConsoleAdapter
from stylebot.bot.core.commands import Imagine, OutputInfo
from stylebot.cli import main
from stylebot.queue.payloads import (
    GeneratedImage,
    GenerateResult,
    JobEvent,
    TrainResult,
)


def console_for(world: CoreWorld, tmp_path: Path) -> tuple[ConsoleAdapter, io.StringIO]:
    out = io.StringIO()
    return ConsoleAdapter(world.bot, out, tmp_path / "outputs", user="ada"), out


async def lines(*items: str) -> AsyncIterator[str]:
    for item in items:
        yield item + "\n"


async def test_a_script_uploads_consents_and_queues_training(
    world: CoreWorld, tmp_path: Path
) -> None:
    image = tmp_path / "one image.png"
    image.write_bytes(png())
    console, out = console_for(world, tmp_path)
    status = await console.run(
        lines(f'/upload "{image}"', "/consent own-work", "/train ink"), wait_for_jobs=False
    )
    assert status == 0
    text = out.getvalue()
    assert "Received 1 image(s)" in text
    assert "Type /consent LICENCE" in text
    assert "Training ink on 1 image(s) is queued" in text
    assert len(world.queue.train_jobs) == 1


async def test_style_commands_and_export_write_a_file(world: CoreWorld, tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(png())
    console, out = console_for(world, tmp_path)
    await console.run(
        lines(f"/upload {image}", "/consent CC0-1.0", "/train ink"), wait_for_jobs=False
    )
    job = world.queue.train_jobs[0]
    result = TrainResult(await world.blobs.put(b"weights"), 10, 0.1, 1.0)
    for note in await world.bot.handle_event(
        JobEvent(job.job_id, "train", "finished", result=result.to_dict())
    ):
        await console.notify(note)

    status = await console.run(
        lines("/style info ink", "/style share public ink", "/style export ink"),
        wait_for_jobs=False,
    )
    assert status == 0
    text = out.getvalue()
    assert "Style ink is ready" in text
    # A notification names commands as the console types them, as its answers do.
    assert "Try: /imagine a lighthouse at dawn style:ink" in text
    assert "\u27e6" not in text
    assert "owner: you" in text
    assert "now public" in text
    exported = tmp_path / "outputs" / "ink.safetensors"
    assert exported.read_bytes() == b"weights"


async def test_mistakes_get_a_clear_line_and_an_error_status(
    world: CoreWorld, tmp_path: Path
) -> None:
    console, out = console_for(world, tmp_path)
    status = await console.run(
        lines(
            "hello",
            "/upload",
            f"/upload {tmp_path / 'missing.png'}",
            "/imagine a cat seed:many",
            "/style rename ink",
            "/frobnicate",
        ),
        wait_for_jobs=False,
    )
    assert status == 1
    text = out.getvalue()
    assert "Commands start with '/'" in text
    assert "Give the image files" in text
    assert "is not a file" in text
    assert "whole number" in text
    assert "Unknown style action" in text
    assert "Unknown command /frobnicate" in text
    assert world.blobs.blobs == {}


async def test_cancel_names_the_job(world: CoreWorld, tmp_path: Path) -> None:
    console, out = console_for(world, tmp_path)
    await console.run(lines("/imagine a cat", "/cancel", "/cancel"), wait_for_jobs=False)
    text = out.getvalue()
    [job] = world.queue.generate_jobs
    assert f"Cancelled your generate job {job.job_id}" in text
    assert "no queued or running job" in text


async def test_as_switches_the_user_so_a_script_can_play_several(
    world: CoreWorld, tmp_path: Path
) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(png())
    console, out = console_for(world, tmp_path)
    status = await console.run(
        lines(f"/upload {image}", "/consent own-work", "/train ink", "/as bob", "/status"),
        wait_for_jobs=False,
    )
    assert status == 0
    assert "You are now bob." in out.getvalue()
    assert console.requester.user_id == "bob"
    bob_status = out.getvalue().split("You are now bob.")[1]
    assert "ink" not in bob_status  # ada's training is not bob's

    job = world.queue.train_jobs[0]
    assert job.owner == "console:1"  # ada, the first user
    result = TrainResult(await world.blobs.put(b"weights"), 10, 0.1, 1.0)
    for note in await world.bot.handle_event(
        JobEvent(job.job_id, "train", "finished", result=result.to_dict())
    ):
        await console.notify(note)
    assert "[for ada]" in out.getvalue()

    await console.run(lines("/as ada", "/styles"), wait_for_jobs=False)
    assert "ink" in out.getvalue().split("You are now ada.")[1]


async def test_as_refuses_a_name_that_is_not_one(world: CoreWorld, tmp_path: Path) -> None:
    console, out = console_for(world, tmp_path)
    assert await console.execute("/as two words") == "error"
    assert console.requester.user_id == "ada"
    assert "is not a console user name" in out.getvalue()


def test_console_refuses_a_bad_user_name_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--data-dir", str(tmp_path), "console", "--user", "two words"])
    assert stopped.value.code == 2
    assert "--user: 'two words' is not a console user name" in capsys.readouterr().err
    assert not (tmp_path / "stylebot.sqlite").exists()


async def test_user_text_reaches_the_terminal_without_control_sequences(
    world: CoreWorld, tmp_path: Path
) -> None:
    # A file name and a prompt, each trying to clear the screen, retitle the window,
    # overwrite the line and reorder what is shown.
    hostile = "\x1b[2J\x1b]0;pwned\x07\rx\x08\x9b31m\u202egnp"
    console, out = console_for(world, tmp_path)
    status = await console.run(lines(f'/upload "{tmp_path / hostile}.png"'), wait_for_jobs=False)
    assert status == 1
    await world.bot.handle(Imagine(console.requester, f"a boat {hostile}", seed=4))
    job = world.queue.generate_jobs[-1]
    key = await world.blobs.put(b"png")
    result = GenerateResult((GeneratedImage(job.output_ids[0], key, 4),), 1.0)
    await world.bot.handle_event(
        JobEvent(job.job_id, "generate", "finished", result=result.to_dict())
    )
    info = await world.bot.handle(OutputInfo(console.requester, job.output_ids[0]))
    assert "\x1b" in getattr(info, "text", ""), "the core keeps the text as typed"
    console.show(info)

    text = out.getvalue()
    for control in ("\x1b", "\r", "\x08", "\x9b", "\u202e", "\x07"):
        assert control not in text, repr(control)
    assert "x31mgnp.png is not a file I can read." in text
    assert "prompt: a boat x31mgnp" in text


async def test_repaint_reads_the_mask_path_and_queues_it(world: CoreWorld, tmp_path: Path) -> None:
    image, picture, mask = tmp_path / "a.png", tmp_path / "garden.png", tmp_path / "hole.png"
    image.write_bytes(png())
    picture.write_bytes(png((30, 120, 60), size=128))
    hole = Image.new("L", (64, 64), 0)
    hole.paste(255, (16, 16, 48, 48))
    hole.save(mask)
    console, out = console_for(world, tmp_path)
    await console.run(
        lines(f"/upload {image}", "/consent CC0-1.0", "/train ink"), wait_for_jobs=False
    )
    job = world.queue.train_jobs[0]
    result = TrainResult(await world.blobs.put(b"weights"), 10, 0.1, 1.0)
    await world.bot.handle_event(JobEvent(job.job_id, "train", "finished", result=result.to_dict()))

    status = await console.run(
        lines(
            f"/repaint {picture} style:ink mask:{tmp_path / 'missing.png'} a door",
            f"/repaint {picture} style:ink mask:{mask} confirm:yes a door",
        ),
        wait_for_jobs=False,
    )
    assert status != 0  # the first line's missing mask
    text = out.getvalue()
    assert "missing.png is not a file I can read" in text
    assert "Repainting the masked part of your picture in style ink" in text
    [repaint] = world.queue.generate_jobs
    assert repaint.mask_key is not None
    assert repaint.mask_key in world.blobs.blobs


async def test_news_of_a_job_names_commands_as_the_console_types_them(
    world: CoreWorld, tmp_path: Path
) -> None:
    """The ready message read "⟦["verify", [], []]⟧ traces it": the console printed
    notifications without spelling their mentions, as it does its answers."""
    console, out = console_for(world, tmp_path)
    await console.run(lines("/imagine a lighthouse"), wait_for_jobs=False)
    [job] = world.queue.generate_jobs
    image = GeneratedImage(job.output_ids[0], await world.blobs.put(png()), 1)
    result = GenerateResult((image,), 1.0)
    for note in await world.bot.handle_event(
        JobEvent(job.job_id, "generate", "finished", result=result.to_dict())
    ):
        await console.notify(note)
    text = out.getvalue()
    assert "/verify traces it" in text
    assert "\u27e6" not in text
