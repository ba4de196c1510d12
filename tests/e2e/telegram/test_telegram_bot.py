"""The Telegram front end end to end: the real python-telegram-bot Application against the
fake Bot API, over the real core, SQLite, embedded Redis, an arq worker and the tiny model.

Users are simulated only at the Bot API: they send albums, files and commands, and press
buttons; the tests then read what the bot posted, edited and stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sqlite3
from pathlib import Path

import pytest
from PIL import Image
from telegram.error import InvalidToken
from tests.fakes.telegram_api import (
    AlbumDocument,
    FakeChat,
    FakeTelegram,
    FakeUser,
    RecordedCall,
    StoredMessage,
)

from stylebot.bootstrap import FrontEnd, PngWatermarkReader
from stylebot.bot.core.consent import LICENCES
from stylebot.bot.core.mentions import spell
from stylebot.bot.core.model import Requester, StyleStatus
from stylebot.bot.core.replies import (
    TRAINING_ENDED_PUBLICLY,
    ImageFile,
    ImagesReady,
    JobFinished,
    JobProgress,
    Notification,
)
from stylebot.bot.telegram.adapter import TelegramAdapter, TelegramNotRunning
from stylebot.bot.telegram.consent import NOT_YOURS
from stylebot.bot.telegram.render import BOT_COMMANDS, telegram_spelling
from stylebot.config import Settings

#: What a group sees when a training ends, as this platform spells it.
ENDED_PUBLICLY = spell(TRAINING_ENDED_PUBLICLY, telegram_spelling)

pytestmark = pytest.mark.slow


# -- helpers ---------------------------------------------------------------------------------


def since(fake: FakeTelegram) -> int:
    """An index into fake.requests: 'calls from now on'."""
    return len(fake.requests)


def calls_since(fake: FakeTelegram, mark: int, method: str) -> list[RecordedCall]:
    return [call for call in fake.requests[mark:] if call.method == method]


def statuses(calls: list[RecordedCall]) -> list[int]:
    return [call.http_status for call in calls]


async def pending_images(frontend: FrontEnd, user: FakeUser) -> int:
    record = await frontend.uow.users.get_or_create_user("telegram", str(user.id), user.first_name)
    return len(await frontend.uow.uploads.pending_uploads(record.id))


def stored_blobs(settings: Settings) -> list[Path]:
    return (
        [p for p in settings.blob_dir.rglob("*") if p.is_file()]
        if settings.blob_dir.exists()
        else []
    )


def consent_of(settings: Settings, consent_id: int) -> tuple[str, int]:
    """(licence, rights_confirmed) of a consent record, read from the database file (the
    repository has no public read of one consent)."""
    with contextlib.closing(sqlite3.connect(settings.database_path)) as db:
        row = db.execute(
            "SELECT licence, rights_confirmed FROM consents WHERE id = ?", (consent_id,)
        ).fetchone()
    assert row is not None
    return (str(row[0]), int(row[1]))


async def consent_question(fake: FakeTelegram, chat: FakeChat) -> StoredMessage:
    return await fake.wait_for_sent(
        chat, lambda m: any(d and d.startswith("cy|") for _, d in m.buttons)
    )


# -- tests ---------------------------------------------------------------------------------


async def test_commands_are_registered_and_help_answers(
    fake: FakeTelegram, telegram: TelegramAdapter, ada: FakeUser
) -> None:
    assert [c["command"] for c in fake.commands()] == [name for name, _ in BOT_COMMANDS]
    assert fake.calls("deleteWebhook"), "polling started"

    chat = fake.private_chat(ada)
    await fake.send_text(chat, ada, "/start")
    help_message = await fake.wait_for_sent(chat)
    assert "/imagine" in (help_message.text or "")
    assert "files" in (help_message.text or "")


async def test_a_wrong_token_fails_start(
    fake: FakeTelegram, frontend: FrontEnd, settings: Settings
) -> None:
    adapter = TelegramAdapter(
        frontend.bot,
        settings.replace(telegram_token="1:not-the-token"),
        base_url=fake.base_url,
        base_file_url=fake.base_file_url,
    )
    with pytest.raises(InvalidToken):
        await adapter.start()
    assert not adapter.running
    assert [call.http_status for call in fake.calls("getMe")] == [401]


async def test_in_groups_only_what_is_addressed_to_the_bot_is_taken(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    ada: FakeUser,
    group: FakeChat,
    samples: list[bytes],
) -> None:
    await fake.send_photo(group, ada, samples[0])  # a picture shared with the group
    await fake.send_text(group, ada, "/styles@some_other_bot")
    await fake.send_text(group, ada, "/styles@stylebot_test_bot")
    # The list is for Ada only, and she never opened a private chat with the bot.
    hint = await fake.wait_for_sent(group)
    assert (hint.text or "").startswith("Ada, my answer is for you only")

    # An image captioned /verify is checked, not uploaded.
    await fake.send_photo(group, ada, samples[1], caption="/verify")
    report = await fake.wait_for_sent(group, lambda m: "watermark" in (m.text or ""))
    assert "No stylebot watermark found" in (report.text or "")
    assert "re-compresses photos" in (report.text or "")
    assert len(fake.sent_messages(group)) == 2, "nothing for the shared picture or other bot"
    assert len(fake.calls("getFile")) == 1


async def test_bad_files_are_refused_and_nothing_is_stored(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    frontend: FrontEnd,
    settings: Settings,
    ada: FakeUser,
    samples: list[bytes],
) -> None:
    chat = fake.private_chat(ada)

    await fake.send_document(chat, ada, b"just some notes\n", "notes.txt", "text/plain")
    refused = await fake.wait_for_sent(chat, lambda m: "notes.txt" in (m.text or ""))
    assert (refused.text or "").startswith("⚠️")
    assert "Nothing was saved" in (refused.text or "")

    # Too big: refused from the size Telegram reports, before anything is downloaded.
    mark = since(fake)
    big = os.urandom(settings.max_upload_bytes + 1)
    big_message = await fake.send_document(chat, ada, big, "huge.png", "image/png")
    too_big = await fake.wait_for_sent(chat, lambda m: "huge.png" in (m.text or ""))
    assert "larger than the 2 MB limit" in (too_big.text or "")
    file_id = big_message.api["document"]["file_id"]
    assert not [c for c in fake.calls("getFile")[mark:] if c.params.get("file_id") == file_id]

    # One bad file in an album refuses the whole album: all or nothing.
    await fake.send_album(
        chat,
        ada,
        [AlbumDocument(samples[0], "good.png", "image/png"), AlbumDocument(b"%PDF-1.4", "bad.png")],
        caption="/train mixed",
    )
    album_refused = await fake.wait_for_sent(chat, lambda m: "bad.png" in (m.text or ""))
    assert "PDF" in (album_refused.text or "")

    assert await pending_images(frontend, ada) == 0
    assert stored_blobs(settings) == []
    assert not any(m.buttons for m in fake.sent_messages(chat)), "no consent asked"


async def test_photo_album_warns_about_recompression_and_cancel_discards(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    frontend: FrontEnd,
    ada: FakeUser,
    samples: list[bytes],
) -> None:
    chat = fake.private_chat(ada)
    await fake.send_album(chat, ada, samples[:2])  # photos, no caption: fine in private
    question = await consent_question(fake, chat)
    assert "Received 2 image(s)" in (question.text or "")
    assert "re-compresses photos" in (question.text or "")
    assert await pending_images(frontend, ada) == 2

    # Naming the style while the question is open: training would start on Confirm.
    await fake.send_text(chat, ada, "/train later")
    hint = await fake.wait_for_sent(chat, lambda m: "training later starts" in (m.text or ""))
    assert "press Confirm" in (hint.text or "")

    await fake.press_button(chat, ada, question, f"cn|{ada.id}|")
    closed = await fake.wait_for_sent(chat, lambda m: "Cancelled" in (m.text or ""))
    assert closed.message_id == question.message_id
    assert closed.buttons == []
    assert "Discarded 2 waiting image(s)" in (closed.text or "")
    assert await pending_images(frontend, ada) == 0
    assert await frontend.uow.jobs.active_jobs() == []


async def test_a_result_after_a_restart_arrives_in_new_messages(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    frontend: FrontEnd,
    settings: Settings,
    ada: FakeUser,
    samples: list[bytes],
) -> None:
    """A restarted front end remembers no status message: the result still arrives, and
    while it is stopped a notification is refused (so the event is kept, not lost)."""
    chat = fake.private_chat(ada)
    to = Requester("telegram", str(ada.id), "Ada", str(chat.id))
    result = ImagesReady(
        "Here you are (seed 1).", "generate-1", (ImageFile("0123456789ab", "a.png", samples[0]),)
    )
    await telegram.stop()
    with pytest.raises(TelegramNotRunning):
        await telegram.notify(Notification(to, result))

    restarted = TelegramAdapter(
        frontend.bot, settings, base_url=fake.base_url, base_file_url=fake.base_file_url
    )
    await restarted.start()
    try:
        fake.flood("sendDocument", retry_after=1)
        await restarted.notify(Notification(to, result))
    finally:
        await restarted.stop()
    status, photo, document = fake.sent_messages(chat)
    assert status.text == "Here you are (seed 1)."
    assert photo.photo, "the preview"
    assert photo.api["reply_to_message"]["message_id"] == status.message_id
    assert document.document_bytes == samples[0]
    assert statuses(fake.calls("sendDocument")) == [429, 200]


async def test_album_consent_train_imagine_verify_in_a_group(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    frontend: FrontEnd,
    settings: Settings,
    worker: None,
    one_torch_thread: None,
    ada: FakeUser,
    bob: FakeUser,
    group: FakeChat,
    samples: list[bytes],
) -> None:
    repo = frontend.uow

    # An album of files, named by its caption.
    documents = [AlbumDocument(data, f"ref-{i}.png", "image/png") for i, data in enumerate(samples)]
    await fake.send_album(group, ada, documents, caption="/train warm")
    question = await consent_question(fake, group)
    assert "Received 3 image(s)" in (question.text or "")
    assert "re-compresses" not in (question.text or ""), "files, not photos"
    licence_buttons = [data for _, data in question.buttons if data and data.startswith("cl|")]
    assert len(licence_buttons) == len(LICENCES)
    assert all(len(data.encode()) <= 64 for _, data in question.buttons if data)

    # Bob cannot answer Ada's question: an alert, and nothing changes.
    ada_record = await repo.users.get_or_create_user("telegram", str(ada.id), "Ada")
    buttons_before = question.buttons
    for data in (f"cl|{ada.id}|CC0-1.0", f"cy|{ada.id}|"):
        answer = await fake.press_and_answer(group, bob, question, data)
        assert answer.get("show_alert") is True
        assert answer.get("text") == NOT_YOURS
    assert fake.sent_messages(group)[-1].buttons == buttons_before
    assert await repo.consents.latest_consent(ada_record.id) is None
    assert await repo.jobs.active_jobs() == [], "nothing queued before Confirm"

    # Ada picks a licence and confirms: consent is recorded and training starts.
    await fake.press_button(group, ada, question, f"cl|{ada.id}|CC-BY-4.0")
    question = await fake.wait_for_sent(
        group, lambda m: (f"cy|{ada.id}|CC-BY-4.0") in [d for _, d in m.buttons]
    )
    assert ("✓ CC BY 4.0", f"cl|{ada.id}|CC-BY-4.0") in question.buttons
    # Confirm needs the people answer too: pressing it now only says so.
    refused = await fake.press_and_answer(group, ada, question, f"cy|{ada.id}|CC-BY-4.0")
    assert refused.get("show_alert") is True
    assert "recognisable people" in refused.get("text", "")
    assert await repo.consents.latest_consent(ada_record.id) is None
    await fake.press_button(group, ada, question, f"cp|{ada.id}|CC-BY-4.0|n")
    question = await fake.wait_for_sent(
        group, lambda m: (f"cy|{ada.id}|CC-BY-4.0|n") in [d for _, d in m.buttons]
    )
    assert ("✓ No recognisable people", f"cp|{ada.id}|CC-BY-4.0|n") in question.buttons
    assert ("✓ CC BY 4.0", f"cl|{ada.id}|CC-BY-4.0|n") in question.buttons
    await fake.press_button(group, ada, question, f"cy|{ada.id}|CC-BY-4.0|n")
    ready = await fake.wait_for_sent(group, lambda m: ENDED_PUBLICLY in (m.text or ""), timeout=120)
    # How it went (the loss, what validation found) is Ada's: her private chat has it.
    await fake.wait_for_sent(
        fake.private_chat(ada), lambda m: "Style warm is ready" in (m.text or "")
    )
    assert not any("is ready" in (m.text or "") for m in fake.sent_messages(group))
    closed = next(m for m in fake.sent_messages(group) if m.message_id == question.message_id)
    assert "Confirmed by Ada: CC BY 4.0" in (closed.text or "")
    assert closed.buttons == []
    # One status message for the job, edited from queued to ready.
    assert ready.text_history[0].startswith("Training warm on 3 image(s) is queued")
    started = [m for m in fake.sent_messages(group) if m.text_history[0].startswith("Training")]
    assert started == [ready], "one status message, edited, not resent"
    assert len(ready.text_history) >= 2
    style = await repo.styles.find_style(ada_record.id, "warm")
    assert style is not None
    assert style.status is StyleStatus.READY
    assert consent_of(settings, style.consent_id) == ("CC-BY-4.0", 1)

    # A private style is Ada's only, in this group too; the refusal survives a flood.
    fake.flood("sendMessage", retry_after=1)
    mark = since(fake)
    await fake.send_text(group, bob, "/imagine a cat style:warm")
    refusal = await fake.wait_for_sent(
        group, lambda m: "no style named warm" in (m.text or ""), timeout=10
    )
    assert (refusal.text or "").startswith("⚠️")
    assert statuses(calls_since(fake, mark, "sendMessage")) == [429, 200]
    bob_record = await repo.users.get_or_create_user("telegram", str(bob.id), "Bob")
    assert await repo.jobs.active_jobs(bob_record.id) == []

    # Ada imagines while Telegram pushes back on edits and photos: the bot waits as told
    # (a retry inside the window would earn a second 429) and still delivers everything.
    fake.flood("editMessageText", retry_after=1)
    fake.flood("sendPhoto", retry_after=1)
    mark = since(fake)
    await fake.send_text(group, ada, "/imagine a lighthouse at dawn style:warm seed:5")
    document = await fake.wait_for_sent(group, lambda m: m.document is not None, timeout=120)
    photo = next(m for m in fake.sent_messages(group) if m.photo)
    edits = statuses(calls_since(fake, mark, "editMessageText"))
    assert edits.count(429) == 1
    assert edits[-1] == 200
    assert statuses(calls_since(fake, mark, "sendPhoto")) == [429, 200]
    status = next(m for m in fake.sent_messages(group) if (m.text or "").startswith("Here you are"))
    assert status.text_history[0].startswith("Imagining 'a lighthouse at dawn' in style warm")

    # The PNG file is the original: its watermark leads to the output record.
    png = document.document_bytes
    assert png is not None
    assert png.startswith(b"\x89PNG")
    output_id = PngWatermarkReader().read(png)
    assert output_id is not None
    record = await repo.outputs.get_output(output_id)
    assert record is not None
    assert record.style_id == style.id
    assert record.prompt == "a lighthouse at dawn"
    assert document.api["document"]["file_name"] == f"stylebot-{output_id}.png"
    assert [data for _, data in photo.buttons] == [
        f"or|{output_id}",
        f"ov|{output_id}",
        f"ou|{output_id}",
        f"ow|{output_id}",
        f"ox|{output_id}",
        f"os|{output_id}",
        f"op|{output_id}",
        f"oi|{output_id}",
        f"od|{output_id}",
    ]
    with Image.open(io.BytesIO(photo.photo_bytes or b"")) as seen:
        assert seen.format == "JPEG", "the preview is what Telegram makes of it"

    # /verify as a reply to the file names the maker; made with Ada's private style, its
    # prompt and style are hers alone, so what Bob is told the group may read too.
    await fake.reply(group, bob, document, "/verify")
    report = await fake.wait_for_sent(group, lambda m: "Made with stylebot" in (m.text or ""))
    assert f"output {output_id}" in (report.text or "")
    # The @ is broken (a zero-width non-joiner): a group /verify must not notify Ada.
    assert "by: @\u200cada, named 'Ada' when it was made" in (report.text or "")
    assert str(ada.id) not in (report.text or "")
    assert "a lighthouse at dawn" not in (report.text or "")

    # The buttons under the image: the core decides who may do what.
    refused = await fake.press_and_answer(group, bob, photo, f"or|{output_id}")
    assert refused.get("show_alert") is True
    assert "not one you can use here" in refused.get("text", "")
    refused = await fake.press_and_answer(group, bob, photo, f"od|{output_id}")
    assert refused.get("text") == "Only the person who made an image can delete it."
    # Info shows the prompt: for the presser only, in their private chat.
    ada_private = fake.private_chat(ada)
    await fake.press_button(group, ada, photo, f"oi|{output_id}")
    info = await fake.wait_for_sent(ada_private, lambda m: "prompt:" in (m.text or ""))
    assert (info.text or "").startswith(f"output: {output_id}")
    assert "seed: 5" in (info.text or "")

    await fake.press_button(group, ada, photo, f"or|{output_id}")
    rerolled = await fake.wait_for_sent(
        group, lambda m: m.document is not None and m.message_id > document.message_id, timeout=120
    )
    second_id = PngWatermarkReader().read(rerolled.document_bytes or b"")
    assert second_id is not None
    assert second_id != output_id
    second = await repo.outputs.get_output(second_id)
    assert second is not None
    assert (second.prompt, second.style_id) == (record.prompt, record.style_id)
    assert second.seed != record.seed

    await fake.press_and_answer(group, ada, photo, f"od|{output_id}")
    await fake.wait_for(
        lambda c: c.method == "deleteMessage" and c.params["message_id"] == document.message_id
    )
    remaining = [m.message_id for m in fake.sent_messages(group)]
    assert photo.message_id not in remaining
    assert document.message_id not in remaining
    assert rerolled.message_id in remaining
    assert await repo.outputs.get_output(output_id) is None

    # Shared with the group, Bob can use it here.
    await fake.send_text(group, ada, "/style share warm")
    await fake.wait_for_sent(group, lambda m: "shared with the members" in (m.text or ""))
    await fake.send_text(group, bob, "/styles")
    listing = await fake.wait_for_sent(
        fake.private_chat(bob), lambda m: "Styles you can use" in (m.text or "")
    )
    assert "- warm (ready, shared here)" in (listing.text or "")

    # Deleting a style asks first, and only the asker can answer.
    await fake.send_text(group, ada, "/style delete warm")
    ask = await fake.wait_for_sent(group, lambda m: (m.text or "").startswith("Delete style warm"))
    refused = await fake.press_and_answer(group, bob, ask, f"sd|{ada.id}|warm")
    assert refused.get("show_alert") is True
    assert await repo.styles.find_style(ada_record.id, "warm") is not None
    await fake.press_button(group, ada, ask, f"sd|{ada.id}|warm")
    await fake.wait_for_sent(group, lambda m: "Deleted style warm" in (m.text or ""))
    assert await repo.styles.find_style(ada_record.id, "warm") is None


async def test_progress_edits_one_message_less_often_in_groups(
    fake: FakeTelegram, telegram: TelegramAdapter, ada: FakeUser, group: FakeChat
) -> None:
    """The same burst of progress in a group and in a private chat: one message each,
    edited at most every 3 s in the group and every 1 s in private, final state always
    shown. No status message is known for these jobs (as after a restart): the first
    update opens one."""
    private = fake.private_chat(ada)
    where = {
        "group": Requester("telegram", str(ada.id), "Ada", str(group.id), str(group.id)),
        "private": Requester("telegram", str(ada.id), "Ada", str(private.id)),
    }
    steps = 12
    for step in range(1, steps + 1):
        for place, to in where.items():
            progress = JobProgress(f"Training x: step {step}/{steps}", place, "train", step, steps)
            await telegram.notify(Notification(to, progress))
        await asyncio.sleep(0.2)
    for place, to in where.items():
        await telegram.notify(
            Notification(to, JobFinished("Style x is ready.", place, "train", True))
        )
        # A progress event that arrives late changes nothing.
        late = JobProgress(f"Training x: step {steps}/{steps}", place, "train", steps, steps)
        await telegram.notify(Notification(to, late))

    [in_group] = fake.sent_messages(group)
    [in_private] = fake.sent_messages(private)
    assert in_group.text_history[0].startswith("Training x: step 1/12")
    assert in_group.text_history[-1] == in_private.text_history[-1] == "Style x is ready."
    # 2.4 s of progress: in the group no edit before the 3 s mark, only the final one.
    assert len(in_group.text_history) == 2
    assert len(in_private.text_history) >= 3
    assert len(in_private.text_history) <= 5, "at most one edit a second, plus the final"
