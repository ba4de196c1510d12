"""The consent trail on real SQLite and a real blob directory: consent, training and
deletion append to the ledger, `stylebot consent verify` checks it, and after deleting the
style nothing of its images, weights or outputs is left on disk."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.fakes.core import RecordingQueue, SteppingClock, bot_on, person

from stylebot.bootstrap import PngWatermarkReader
from stylebot.bot.core.commands import (
    ConfirmConsent,
    DeleteStyle,
    Imagine,
    IncomingFile,
    TrainStyle,
    UploadImages,
)
from stylebot.bot.core.ledger import verify_chain
from stylebot.bot.core.policy import Policy
from stylebot.bot.core.replies import JobQueued, TextReply
from stylebot.cli import main
from stylebot.config import Settings
from stylebot.queue.payloads import (
    GeneratedImage,
    GenerateResult,
    JobEvent,
    TrainResult,
    TrainSettings,
)
from stylebot.storage.blobs import LocalBlobStore
from stylebot.storage.unit_of_work import SqliteUnitOfWork

ALICE = person("alice")


def painting(seed: int) -> bytes:
    small = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(small).resize((96, 96), Image.Resampling.BICUBIC).save(buffer, "PNG")
    return buffer.getvalue()


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def test_delete_leaves_nothing_on_disk_and_the_ledger_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    repo = await SqliteUnitOfWork.open(settings.database_path)
    ledger = repo.ledger
    blobs = LocalBlobStore(settings.blob_dir)
    queue = RecordingQueue()
    bot = bot_on(
        repo,
        blobs,
        queue,
        PngWatermarkReader(),
        SteppingClock(),
        Policy(base_model="tiny", train=TrainSettings(steps=2, resolution=64)),
    )
    try:
        files = tuple(IncomingFile(f"p{i}.png", painting(i)) for i in range(3))
        await bot.handle(UploadImages(ALICE, files))
        await bot.handle(ConfirmConsent(ALICE, "CC-BY-SA-4.0", True))
        queued = await bot.handle(TrainStyle(ALICE, "inkquokka"))
        assert isinstance(queued, JobQueued)
        lora = await blobs.put(b"the trained weights")
        result = TrainResult(lora_key=lora, steps=2, final_loss=0.5, seconds=1.0)
        await bot.handle_event(
            JobEvent(queued.job_id, "train", "finished", result=result.to_dict())
        )
        await bot.handle(Imagine(ALICE, "a boat near zanzibar", style="inkquokka"))
        job = queue.generate_jobs[-1]
        image_key = await blobs.put(b"an output png")
        generated = GenerateResult(
            images=(GeneratedImage(job.output_ids[0], image_key, job.seed),), seconds=1.0
        )
        await bot.handle_event(
            JobEvent(job.job_id, "generate", "finished", result=generated.to_dict())
        )
        assert len(files_under(settings.blob_dir)) == 5

        reply = await bot.handle(DeleteStyle(ALICE, "inkquokka"))
        assert isinstance(reply, TextReply)
        assert files_under(settings.blob_dir) == []
        # With the database still open: neither its file nor its write-ahead log keeps
        # the deleted style's name or the prompt made with it.
        holding = [
            p
            for p in files_under(settings.database_path.parent)
            if p.name.startswith(settings.database_path.name)
            and (b"inkquokka" in p.read_bytes() or b"zanzibar" in p.read_bytes())
        ]
        assert holding == []
        entries = await ledger.entries()
        assert [e.kind for e in entries] == ["consent", "training", "revocation"]
        assert entries[0].payload["licence"] == "CC-BY-SA-4.0"
        assert len(entries[0].payload["images"]) == 3
        assert verify_chain(entries).intact
    finally:
        await repo.close()

    status = await asyncio.to_thread(
        main, ["--data-dir", str(settings.data_dir), "consent", "verify"]
    )
    assert status == 0
    assert "3 entries, intact" in capsys.readouterr().out
