"""The fake Bot API works with the real python-telegram-bot client.

Every test drives a real ``telegram.ext.Application`` (long polling, real handlers, real
httpx requests) against ``FakeTelegram`` and asserts on what the fake recorded. If these pass,
the Telegram adapter's end-to-end tests can trust the fake; if PTB changes how it talks to
the Bot API, these are the tests that notice.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import hashlib
import io
import time
from collections.abc import AsyncIterator

import pytest
from PIL import Image
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto, Update
from telegram.error import BadRequest, ChatMigrated, NetworkError, RetryAfter
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from tests.fakes.telegram_api import FakeChat, FakeTelegram, FakeUser, StoredMessage
from tests.support.large_results import noise_png

TOKEN = "123456:TEST-token_abc"
COMMANDS = [("echo", "Repeat what you say"), ("menu", "Show a menu")]
ALBUM_QUIET_SECONDS = 0.3


def _png(width: int, height: int, color: tuple[int, int, int]) -> bytes:
    """A PNG with a gradient, so JPEG re-encoding visibly changes the pixels."""
    image = Image.new("RGB", (width, height), color)
    for x in range(0, width, 7):
        for y in range(0, height, 5):
            image.putpixel((x, y), ((x * 3) % 256, (y * 5) % 256, (x + y) % 256))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# -- the tiny application under test --------------------------------------------------------


async def send_honouring_flood(context: ContextTypes.DEFAULT_TYPE, chat_id: int, text: str) -> None:
    """Send, and on 429 wait as long as Telegram says before trying again (what the bot does)."""
    waits: list[dtm.timedelta | int] = context.bot_data.setdefault("flood_waits", [])
    while True:
        try:
            await context.bot.send_message(chat_id, text)
            return
        except RetryAfter as exc:
            wait = exc.retry_after  # a timedelta with PTB_TIMEDELTA=true, else a (deprecated) int
            waits.append(wait)
            seconds = wait.total_seconds() if isinstance(wait, dtm.timedelta) else wait
            await asyncio.sleep(seconds)


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_chat is not None
    await send_honouring_flood(context, update.effective_chat.id, " ".join(context.args or []))


async def menu(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    keyboard = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton("Like", callback_data="like:1")],
            [InlineKeyboardButton("Skip", callback_data="skip:1")],
        ]
    )
    await update.message.reply_text("Pick one", reply_markup=keyboard)


async def choose(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    await query.answer(text="Liked!" if query.data == "like:1" else "Skipped")
    await query.edit_message_text(f"You chose {query.data}")


async def picture(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
    """Send one generated PNG as a photo (Telegram recompresses) and one as a document."""
    assert update.message is not None
    png = _png(64, 48, (10, 200, 30))
    await update.message.reply_photo(png, caption="as photo")
    await update.message.reply_document(png, filename="art.png", caption="as document")


async def size_of_replied(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/size` as a reply to a photo: download the replied-to photo, report its size."""
    message = update.message
    assert message is not None
    replied = message.reply_to_message
    if replied is None or not replied.photo:
        await message.reply_text("reply to a photo")
        return
    data = await (await replied.photo[-1].get_file()).download_as_bytearray()
    await message.reply_text(f"replied photo: {len(data)} bytes")


async def media(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Download a document or photo and reply with its size; group albums first."""
    message = update.message
    assert message is not None
    if message.media_group_id:
        albums: dict[str, list[Update]] = context.bot_data.setdefault("albums", {})
        parts = albums.setdefault(message.media_group_id, [])
        parts.append(update)
        if len(parts) == 1:
            context.application.create_task(
                flush_album(context, message.media_group_id, message.chat_id)
            )
        return
    if message.document:
        data = await (await message.document.get_file()).download_as_bytearray()
        digest = hashlib.sha256(data).hexdigest()
        await message.reply_text(
            f"document {message.document.file_name}: {len(data)} bytes sha256 {digest}"
        )
    elif message.photo:
        largest = message.photo[-1]
        data = await (await largest.get_file()).download_as_bytearray()
        await message.reply_text(f"photo {largest.width}x{largest.height}: {len(data)} bytes")


async def flush_album(context: ContextTypes.DEFAULT_TYPE, group_id: str, chat_id: int) -> None:
    """Telegram delivers an album as separate updates; wait until no more arrive."""
    albums: dict[str, list[Update]] = context.bot_data["albums"]
    seen = -1
    while seen != len(albums[group_id]):
        seen = len(albums[group_id])
        await asyncio.sleep(ALBUM_QUIET_SECONDS)
    parts = albums.pop(group_id)
    total = 0
    for part in parts:
        assert part.message is not None
        data = await (await part.message.photo[-1].get_file()).download_as_bytearray()
        total += len(data)
    caption = next((p.message.caption for p in parts if p.message and p.message.caption), "")
    await context.bot.send_message(chat_id, f"album of {len(parts)} ({caption}): {total} bytes")


async def post_init(application: Application) -> None:
    await application.bot.set_my_commands(COMMANDS)


def build_app(fake: FakeTelegram) -> Application:
    app = (
        Application.builder()
        .token(fake.token)
        .base_url(fake.base_url)
        .base_file_url(fake.base_file_url)
        .post_init(post_init)
        .build()
    )
    app.add_handler(CommandHandler("echo", echo))
    app.add_handler(CommandHandler("menu", menu))
    app.add_handler(CommandHandler("picture", picture))
    app.add_handler(CommandHandler("size", size_of_replied))
    app.add_handler(CallbackQueryHandler(choose))
    app.add_handler(MessageHandler(filters.PHOTO | filters.Document.ALL, media))
    return app


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _local_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx honours proxy variables; the fake is local. PTB_TIMEDELTA opts in to the
    timedelta ``RetryAfter.retry_after`` (the int form is deprecated and warns)."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram(token=TOKEN)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def app(fake: FakeTelegram) -> AsyncIterator[Application]:
    application = build_app(fake)
    await application.initialize()
    if application.post_init is not None:
        await application.post_init(application)
    await application.start()
    assert application.updater is not None
    await application.updater.start_polling(poll_interval=0.0, timeout=dtm.timedelta(seconds=1))
    yield application
    await application.updater.stop()
    await application.stop()
    await application.shutdown()


@pytest.fixture
def user(fake: FakeTelegram) -> FakeUser:
    return fake.user(id=4242, first_name="Ada", username="ada")


@pytest.fixture
def group(fake: FakeTelegram) -> FakeChat:
    return fake.group_chat(id=-1001234567890, title="Artists")


def _texts(messages: list[StoredMessage]) -> list[str | None]:
    return [message.text for message in messages]


# -- tests ----------------------------------------------------------------------------------


async def test_startup_and_echo_command(
    fake: FakeTelegram, app: Application, user: FakeUser, group: FakeChat
) -> None:
    assert [call.method for call in fake.requests[:2]] == ["getMe", "setMyCommands"]
    assert fake.calls("deleteWebhook"), "start_polling deletes the webhook first"
    assert fake.commands() == [{"command": c, "description": d} for c, d in COMMANDS]
    assert [c.command for c in await app.bot.get_my_commands()] == ["echo", "menu"]

    sent = await fake.send_text(group, user, "/echo hello  world")
    assert sent.api["entities"] == [{"type": "bot_command", "offset": 0, "length": 5}]

    reply = await fake.wait_for_sent(group, lambda m: m.text is not None)
    assert reply.text == "hello world"
    assert reply.api["from"]["id"] == 123456
    call = fake.calls("sendMessage")[0]
    assert call.params["chat_id"] == group.id
    assert call.http_status == 200


async def test_document_download_is_byte_exact(
    fake: FakeTelegram, app: Application, user: FakeUser
) -> None:
    chat = fake.private_chat(user)
    data = bytes(range(256)) * 40 + b"tail"
    await fake.send_document(chat, user, data, "weights.bin", "application/octet-stream")

    reply = await fake.wait_for_sent(chat)
    expected = f"document weights.bin: {len(data)} bytes sha256 {hashlib.sha256(data).hexdigest()}"
    assert reply.text == expected
    assert fake.calls("getFile")[0].result["file_path"].startswith("documents/")


async def test_photo_is_recompressed_like_telegram(
    fake: FakeTelegram, app: Application, user: FakeUser, group: FakeChat
) -> None:
    png = _png(1600, 900, (200, 40, 90))
    message = await fake.send_photo(group, user, png, caption="my art")

    assert message.photo_bytes is not None
    with Image.open(io.BytesIO(message.photo_bytes)) as seen:
        assert seen.format == "JPEG"
        assert seen.size == (1280, 720)
    widths = [size["width"] for size in message.api["photo"]]
    assert widths == sorted(widths)
    assert widths[-1] == 1280

    reply = await fake.wait_for_sent(group)
    assert reply.text == f"photo 1280x720: {len(message.photo_bytes)} bytes"


async def test_album_is_grouped_by_media_group_id(
    fake: FakeTelegram, app: Application, user: FakeUser, group: FakeChat
) -> None:
    images = [_png(120, 80, (i * 60, 100, 200)) for i in range(3)]
    parts = await fake.send_album(group, user, images, caption="set one")

    assert len({part.media_group_id for part in parts}) == 1
    assert [part.caption for part in parts] == ["set one", None, None]
    reply = await fake.wait_for_sent(group, timeout=5)
    total = sum(len(part.photo_bytes or b"") for part in parts)
    assert reply.text == f"album of 3 (set one): {total} bytes"
    assert len(fake.sent_messages(group)) == 1, "one reply for the whole album"
    assert len(fake.calls("getFile")) == 3


async def test_button_press_answers_and_edits(
    fake: FakeTelegram, app: Application, user: FakeUser, group: FakeChat
) -> None:
    await fake.send_text(group, user, "/menu")
    menu_message = await fake.wait_for_sent(group, lambda m: bool(m.buttons))
    assert menu_message.buttons == [("Like", "like:1"), ("Skip", "skip:1")]

    query_id = await fake.press_button(group, user, menu_message, "like:1")
    await fake.wait_for(lambda c: c.method == "answerCallbackQuery" and c.ok)
    assert fake.callback_answer(query_id) is not None
    assert fake.callback_answer(query_id)["text"] == "Liked!"  # type: ignore[index]

    edited = await fake.wait_for_sent(group, lambda m: m.text == "You chose like:1")
    assert edited.message_id == menu_message.message_id
    assert edited.text_history == ["Pick one", "You chose like:1"]
    assert edited.reply_markup is None, "an edit without reply_markup drops the keyboard"
    with pytest.raises(AssertionError, match="no button"):
        await fake.press_button(group, user, edited, "like:1")


async def test_flood_surfaces_retry_after_and_retry_succeeds(
    fake: FakeTelegram, app: Application, user: FakeUser, group: FakeChat
) -> None:
    fake.flood("sendMessage", retry_after=1, times=1)
    started = time.monotonic()
    await fake.send_text(group, user, "/echo after the flood")

    reply = await fake.wait_for_sent(group, timeout=6)
    assert reply.text == "after the flood"
    assert app.bot_data["flood_waits"] == [dtm.timedelta(seconds=1)]
    calls = fake.calls("sendMessage")
    assert [call.http_status for call in calls] == [429, 200]
    assert calls[0].response == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 1",
        "parameters": {"retry_after": 1},
    }
    assert time.monotonic() - started >= 1.0


async def test_retry_inside_the_window_is_refused(
    fake: FakeTelegram, app: Application, group: FakeChat
) -> None:
    fake.flood("sendMessage", retry_after=1)
    with pytest.raises(RetryAfter) as first:
        await app.bot.send_message(group.id, "one")
    assert first.value.retry_after == dtm.timedelta(seconds=1)
    with pytest.raises(RetryAfter):
        await app.bot.send_message(group.id, "too early")
    await asyncio.sleep(1.05)
    await app.bot.send_message(group.id, "in time")
    assert _texts(fake.sent_messages(group)) == ["in time"]


async def test_bot_uploads_are_kept_and_served(
    fake: FakeTelegram, app: Application, user: FakeUser, group: FakeChat
) -> None:
    await fake.send_text(group, user, "/picture")
    photo_message = await fake.wait_for_sent(group, lambda m: bool(m.photo))
    document_message = await fake.wait_for_sent(group, lambda m: m.document is not None)

    uploaded = photo_message.uploads[0].data
    assert uploaded.startswith(b"\x89PNG"), "the upload is kept byte-for-byte"
    assert photo_message.photo_bytes is not None
    assert photo_message.photo_bytes.startswith(b"\xff\xd8"), "recipients get a JPEG"
    assert document_message.document_bytes == document_message.uploads[0].data == uploaded
    assert document_message.api["document"]["file_name"] == "art.png"

    await fake.reply(group, user, photo_message, "/size")
    answer = await fake.wait_for_sent(group, lambda m: (m.text or "").startswith("replied"))
    assert answer.text == f"replied photo: {len(photo_message.photo_bytes)} bytes"


async def test_telegram_errors_reach_the_client(fake: FakeTelegram, app: Application) -> None:
    group = fake.group_chat(id=-42, title="small group")
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await app.bot.send_message(group.id, "<oops> not escaped", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)character '\.' is reserved"):
        await app.bot.send_message(group.id, "1.5", parse_mode="MarkdownV2")
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await app.bot.send_message(-999, "nobody here")
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await app.bot.send_message(group.id, "x" * 4097)

    sent = await app.bot.send_message(group.id, "<b>bold</b> &amp; plain", parse_mode="HTML")
    assert sent.text == "bold & plain"
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [("bold", 0, 4)]
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await sent.edit_text("<b>bold</b> &amp; plain", parse_mode="HTML")
    assert await sent.delete()
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await sent.delete()


async def test_texts_captions_and_button_data_over_telegrams_limits_are_refused(
    fake: FakeTelegram, app: Application
) -> None:
    group = fake.group_chat(id=-43, title="limits")
    png = _png(8, 8, (1, 2, 3))

    def keyboard(data: str) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup([[InlineKeyboardButton("go", callback_data=data)]])

    with pytest.raises(BadRequest, match=r"(?i)message caption is too long"):
        await app.bot.send_document(group.id, png, filename="a.png", caption="c" * 1025)
    with pytest.raises(BadRequest, match=r"(?i)message caption is too long"):
        await app.bot.send_photo(group.id, png, caption="c" * 1025)
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        await app.bot.send_message(group.id, "press", reply_markup=keyboard("é" * 33))  # 66 B
    at_limits = await app.bot.send_message(group.id, "x" * 4096, reply_markup=keyboard("d" * 64))
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await at_limits.edit_text("y" * 4097)
    await app.bot.send_photo(group.id, png, caption="c" * 1024)
    assert [len(m.text or m.caption or "") for m in fake.sent_messages(group)] == [4096, 1024]


async def test_a_migrated_group_answers_with_its_new_id(
    fake: FakeTelegram, app: Application, user: FakeUser
) -> None:
    group = fake.group_chat(id=-42, title="small group")
    await fake.send_text(group, user, "/echo before")
    await fake.wait_for_sent(group)
    supergroup = fake.migrate_group(group, -1000000000042)

    with pytest.raises(ChatMigrated) as migrated:
        await app.bot.send_message(group.id, "to the old id")
    assert migrated.value.new_chat_id == supergroup.id
    assert supergroup.type == "supergroup"
    member = await app.bot.get_chat_member(supergroup.id, user.id)  # members came along
    assert member.user.id == user.id
    await app.bot.send_message(supergroup.id, "to the new id")
    assert _texts(fake.sent_messages(supergroup)) == ["to the new id"]


async def test_an_upload_over_50_mb_answers_413(fake: FakeTelegram, app: Application) -> None:
    group = fake.group_chat(id=-42, title="small group")
    with pytest.raises(NetworkError, match="Request Entity Too Large"):
        await app.bot.send_document(group.id, b"\0" * (50 * 1024 * 1024 + 1), filename="big")
    (call,) = fake.calls("sendDocument")
    assert (call.http_status, call.params["chat_id"]) == (413, group.id)
    assert fake.sent_messages(group) == []


async def test_stop_releases_held_long_poll(fake: FakeTelegram) -> None:
    app = build_app(fake)
    await app.initialize()
    poll = asyncio.create_task(app.bot.get_updates(timeout=30))
    await fake.wait_for(lambda c: c.method == "getMe")
    await asyncio.sleep(0.2)  # let the poll reach the server and be held
    started = time.monotonic()
    await fake.stop()
    assert await asyncio.wait_for(poll, timeout=3) == ()
    assert time.monotonic() - started < 3
    await app.shutdown()


async def test_privacy_mode_hides_plain_group_messages() -> None:
    async with FakeTelegram(token=TOKEN, privacy_mode=True) as fake:
        user = fake.user(id=7, first_name="Quiet")
        group = fake.group_chat(id=-1009, title="private-minded")
        plain = await fake.send_text(group, user, "just chatting")
        command = await fake.send_text(group, user, "/echo hi")
        assert (plain.delivered, command.delivered) == (False, True)


async def test_chat_members_and_anonymous_admins(fake: FakeTelegram, app: Application) -> None:
    group = fake.group_chat(id=-1007, title="members")
    owner = fake.user(id=11, first_name="Owner")
    admin = fake.user(id=12, first_name="Admin")
    member = fake.user(id=13, first_name="Member")
    fake.set_member_status(group, owner, "creator")
    fake.set_member_status(group, admin, "administrator")
    await fake.send_text(group, member, "hello")  # posting makes a member

    statuses = [
        (await app.bot.get_chat_member(group.id, user.id)).status for user in (owner, admin, member)
    ]
    assert statuses == ["creator", "administrator", "member"]
    admins = await app.bot.get_chat_administrators(group.id)
    assert sorted(a.user.id for a in admins) == [owner.id, admin.id]
    with pytest.raises(BadRequest, match=r"(?i)user not found"):
        await app.bot.get_chat_member(group.id, 99)
    fake.set_member_status(group, admin, "kicked")
    assert (await app.bot.get_chat_member(group.id, admin.id)).status == "kicked"
    with pytest.raises(BadRequest, match=r"(?i)no administrators in the private chat"):
        await app.bot.get_chat_administrators(fake.private_chat(member).id)

    anonymous = await fake.send_text(group, owner, "/echo as the group", as_group=True)
    assert anonymous.api["sender_chat"]["id"] == group.id
    assert anonymous.api["from"]["username"] == "GroupAnonymousBot"
    with pytest.raises(ValueError, match="anonymous admins"):
        await fake.send_text(fake.private_chat(owner), owner, "hi", as_group=True)


async def test_photos_and_albums_over_telegrams_limits_are_refused(
    fake: FakeTelegram, app: Application, group: FakeChat
) -> None:
    over_10_mb = noise_png(2048, 2048)
    refusals = [
        (over_10_mb, "PHOTO_SAVE_FILE_INVALID"),
        (_png(5001, 5000, (0, 0, 0)), "PHOTO_INVALID_DIMENSIONS"),  # sides over 10000
        (_png(2100, 100, (0, 0, 0)), "PHOTO_INVALID_DIMENSIONS"),  # ratio over 20
    ]
    for photo, error in refusals:
        with pytest.raises(BadRequest, match=f"(?i){error}"):
            await app.bot.send_photo(group.id, photo)
    small = _png(64, 64, (0, 90, 0))
    for count in (1, 11):
        with pytest.raises(BadRequest, match="2-10 items"):
            await app.bot.send_media_group(group.id, [InputMediaPhoto(small)] * count)
    # One refused photo refuses the whole album: nothing of it is posted.
    with pytest.raises(BadRequest, match=r"(?i)PHOTO_SAVE_FILE_INVALID"):
        await app.bot.send_media_group(
            group.id, [InputMediaPhoto(small), InputMediaPhoto(over_10_mb)]
        )
    assert fake.sent_messages(group) == []
    # At the limits, photos go through.
    await app.bot.send_photo(group.id, _png(5000, 5000, (0, 0, 0)))
    await app.bot.send_photo(group.id, _png(2000, 100, (0, 0, 0)))
    await app.bot.send_media_group(group.id, [InputMediaPhoto(small)] * 10)
    assert len(fake.sent_messages(group)) == 12
