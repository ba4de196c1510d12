"""What the core appends to the consent ledger, and that revocation leaves nothing behind."""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image
from tests.fakes.core import person
from tests.fakes.safety import SafetyWorld
from tests.unit.safety.reservations import (
    DMI,
    jpeg_with_c2pa_training_mining,
    jpeg_with_xmp,
    xmp_with_data_mining,
)

from stylebot.bot.core.commands import (
    ConfirmConsent,
    DeleteStyle,
    Imagine,
    IncomingFile,
    TrainStyle,
    UploadImages,
)
from stylebot.bot.core.consent import TERMS_SHA256, TERMS_VERSION
from stylebot.bot.core.ledger import LedgerKind, verify_chain
from stylebot.bot.core.perceptual import PerceptualHash, perceptual_hash
from stylebot.bot.core.replies import ConsentRequest, ErrorReply, JobQueued, TextReply
from stylebot.queue.payloads import (
    GeneratedImage,
    GenerateResult,
    JobEvent,
    TrainResult,
)

ALICE = person("alice")


def painting(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    image = Image.fromarray(small, "RGB").resize((128, 128), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


async def upload_and_confirm(safe: SafetyWorld, *seeds: int, **consent: object) -> object:
    files = tuple(IncomingFile(f"p{s}.png", painting(s)) for s in seeds)
    assert isinstance(await safe.bot.handle(UploadImages(ALICE, files)), ConsentRequest)
    return await safe.bot.handle(ConfirmConsent(ALICE, "CC-BY-4.0", True, **consent))  # type: ignore[arg-type]


async def test_a_consent_records_who_what_when_terms_licence_and_each_image(
    safe: SafetyWorld,
) -> None:
    reply = await upload_and_confirm(safe, 1, 2, identifiable_people=False)
    assert isinstance(reply, TextReply)
    (entry,) = safe.ledger.of_kind(LedgerKind.CONSENT)
    p = entry.payload
    assert (p["platform"], p["platform_user_id"]) == ("discord", "alice")
    assert p["terms_version"] == TERMS_VERSION
    assert p["terms_sha256"] == TERMS_SHA256
    assert (p["licence"], p["licence_is_spdx"]) == ("CC-BY-4.0", True)
    assert (p["identifiable_people"], p["people_agreed"]) == (False, None)
    assert entry.recorded_at.utcoffset() is not None
    user = await safe.uow.users.get_or_create_user("discord", "alice", "Alice")
    pending = await safe.uow.uploads.pending_uploads(user.id)
    assert sorted(i["sha256"] for i in p["images"]) == sorted(u.blob_key for u in pending)
    for image in p["images"]:
        stored = safe.blobs.blobs[image["sha256"]]
        assert hashlib.sha256(stored).hexdigest() == image["sha256"]
        expected = perceptual_hash(Image.open(io.BytesIO(stored)))
        assert PerceptualHash.from_hex(image["phash"]) == expected
        assert expected.informative


async def test_own_work_is_recorded_as_not_an_spdx_licence(safe: SafetyWorld) -> None:
    files = (IncomingFile("p.png", painting(3)),)
    await safe.bot.handle(UploadImages(ALICE, files))
    await safe.bot.handle(ConfirmConsent(ALICE, "own-work", True))
    (entry,) = safe.ledger.of_kind(LedgerKind.CONSENT)
    assert (entry.payload["licence"], entry.payload["licence_is_spdx"]) == ("own-work", False)


async def test_identifiable_people_without_their_agreement_is_refused(safe: SafetyWorld) -> None:
    reply = await upload_and_confirm(safe, 4, identifiable_people=True, people_agreed=False)
    assert isinstance(reply, ErrorReply)
    assert "Recognisable people" in reply.text
    assert safe.ledger.rows == []
    user = await safe.uow.users.get_or_create_user("discord", "alice", "Alice")
    assert await safe.uow.consents.latest_consent(user.id) is None
    agreed = await safe.bot.handle(
        ConfirmConsent(ALICE, "CC0-1.0", True, identifiable_people=True, people_agreed=True)
    )
    assert isinstance(agreed, TextReply)
    (entry,) = safe.ledger.rows
    assert (entry.payload["identifiable_people"], entry.payload["people_agreed"]) == (True, True)


async def test_a_refused_consent_appends_nothing(safe: SafetyWorld) -> None:
    await safe.bot.handle(ConfirmConsent(ALICE, "CC0-1.0", True))  # nothing waiting
    await safe.bot.handle(ConfirmConsent(ALICE, "no-such-licence", True))
    await safe.bot.handle(ConfirmConsent(ALICE, "CC0-1.0", False))
    assert safe.ledger.rows == []


async def test_training_ties_the_consent_to_the_style(safe: SafetyWorld) -> None:
    await upload_and_confirm(safe, 5, 6)
    queued = await safe.bot.handle(TrainStyle(ALICE, "ink"))
    assert isinstance(queued, JobQueued)
    consent_entry, training_entry = safe.ledger.rows
    assert training_entry.kind == LedgerKind.TRAINING
    style = await safe.uow.styles.get_style(safe.queue.train_jobs[0].style_id)
    assert style is not None
    assert training_entry.payload["style_id"] == style.id
    assert "style_name" not in training_entry.payload  # ids and hashes only: no free text
    assert training_entry.payload["consent_id"] == consent_entry.payload["consent_id"]
    assert training_entry.payload["image_sha256"] == sorted(
        i["sha256"] for i in consent_entry.payload["images"]
    )
    assert training_entry.prev_hash == consent_entry.entry_hash


async def test_deleting_a_style_revokes_it_and_leaves_none_of_its_blobs(
    safe: SafetyWorld,
) -> None:
    await upload_and_confirm(safe, 7, 8)
    queued = await safe.bot.handle(TrainStyle(ALICE, "ink"))
    assert isinstance(queued, JobQueued)
    lora = await safe.blobs.put(b"weights of ink")
    await safe.bot.handle_event(
        JobEvent(
            queued.job_id,
            "train",
            "finished",
            result=TrainResult(lora_key=lora, steps=10, final_loss=0.1, seconds=1).to_dict(),
        )
    )
    made = await safe.bot.handle(Imagine(ALICE, "a boat", style="ink"))
    assert isinstance(made, JobQueued)
    job = safe.queue.generate_jobs[0]
    output_key = await safe.blobs.put(b"an output image")
    await safe.bot.handle_event(
        JobEvent(
            job.job_id,
            "generate",
            "finished",
            result=GenerateResult(
                images=(GeneratedImage(job.output_ids[0], output_key, job.seed),), seconds=1.0
            ).to_dict(),
        )
    )
    assert len(safe.blobs.keys()) == 4  # two images, the weights, one output

    reply = await safe.bot.handle(DeleteStyle(ALICE, "ink"))
    assert isinstance(reply, TextReply)
    assert safe.blobs.keys() == set()
    revocation = safe.ledger.rows[-1]
    assert revocation.kind == LedgerKind.REVOCATION
    assert revocation.payload["style_id"] == safe.queue.train_jobs[0].style_id
    assert revocation.payload["deleted_blobs"] == 4
    assert len(revocation.payload["image_sha256"]) == 2
    assert [e.kind for e in safe.ledger.rows] == ["consent", "training", "revocation"]
    assert verify_chain(await safe.ledger.entries()).intact
    unusable = await safe.bot.handle(Imagine(ALICE, "a boat", style="ink"))
    assert isinstance(unusable, ErrorReply)


async def test_deleting_a_style_while_it_trains_cancels_the_job_and_revokes(
    safe: SafetyWorld,
) -> None:
    await upload_and_confirm(safe, 9)
    queued = await safe.bot.handle(TrainStyle(ALICE, "ink"))
    assert isinstance(queued, JobQueued)
    await safe.bot.handle(DeleteStyle(ALICE, "ink"))
    assert safe.queue.cancelled == [queued.job_id]
    assert safe.blobs.keys() == set()
    assert safe.ledger.rows[-1].kind == LedgerKind.REVOCATION


async def test_uploads_whose_metadata_reserves_training_are_refused(safe: SafetyWorld) -> None:
    cases = [
        ("plus.jpg", jpeg_with_xmp(xmp_with_data_mining(DMI + "DMI-PROHIBITED-AIMLTRAINING"))),
        ("c2pa.jpg", jpeg_with_c2pa_training_mining("notAllowed")),
    ]
    for name, data in cases:
        files = (IncomingFile("fine.png", painting(10)), IncomingFile(name, data))
        reply = await safe.bot.handle(UploadImages(ALICE, files))
        assert isinstance(reply, ErrorReply)
        assert f"“{name}” can't be used to train a style" in reply.text
        assert "AI training" in reply.text
        assert "Nothing was saved" in reply.text
        assert safe.blobs.keys() == set()
    allowed = jpeg_with_xmp(xmp_with_data_mining(DMI + "DMI-ALLOWED"))
    accepted = await safe.bot.handle(UploadImages(ALICE, (IncomingFile("ok.jpg", allowed),)))
    assert isinstance(accepted, ConsentRequest)
