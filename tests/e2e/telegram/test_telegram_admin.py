"""Admin commands, /optout, the people question and /forgetme on Telegram, end to end: the
real python-telegram-bot Application against the fake Bot API, over the real core, SQLite
and embedded Redis.

No worker runs here, so a job asked for stays queued: that is what /admin queue lists and
what a ban cancels.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest
from tests.fakes.telegram_api import (
    AlbumDocument,
    FakeChat,
    FakeTelegram,
    FakeUser,
    StoredMessage,
)

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.admin_ports import GLOBAL_SCOPE, AdminPorts
from stylebot.bot.core.ledger import LedgerKind
from stylebot.bot.core.model import JobStatus
from stylebot.bot.telegram.adapter import TelegramAdapter
from stylebot.bot.telegram.consent import NOT_YOURS
from stylebot.bot.telegram.handlers import POSTED_AS_CHAT
from stylebot.bot.telegram.render import BOT_COMMANDS
from stylebot.config import Settings

pytestmark = pytest.mark.slow

OPERATOR_ID = 3003


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The Telegram stack's settings, with Carol as the bot's operator."""
    return settings.replace(operators=f"telegram:{OPERATOR_ID}")


@pytest.fixture
def carol(fake: FakeTelegram) -> FakeUser:
    return fake.user(id=OPERATOR_ID, first_name="Carol", username="carol")


def admin_ports(frontend: FrontEnd) -> AdminPorts:
    ports = frontend.bot.deps.admin
    assert isinstance(ports, AdminPorts)
    return ports


async def quota_of(frontend: FrontEnd, scope: str, kind: str) -> int | None:
    quotas = await admin_ports(frontend).store.quotas([scope], kind)
    return quotas[0].per_day if quotas else None


async def paused_by(frontend: FrontEnd) -> str | None:
    return await admin_ports(frontend).training.paused_by()


async def said(fake: FakeTelegram, chat: FakeChat, user: FakeUser, text: str) -> str:
    """``user`` sends ``text``; the bot's answer to that very message."""
    sent = await fake.send_text(chat, user, text)
    return await answer_to(fake, chat, sent.message_id)


async def answer_to(fake: FakeTelegram, chat: FakeChat, message_id: int) -> str:
    answer = await fake.wait_for_sent(
        chat, lambda m: (m.api.get("reply_to_message") or {}).get("message_id") == message_id
    )
    return answer.text or ""


def count_rows(settings: Settings, sql: str, *args: object) -> int:
    with contextlib.closing(sqlite3.connect(settings.database_path)) as db:
        return int(db.execute(sql, args).fetchone()[0])


def stored_blobs(settings: Settings) -> list[Path]:
    root = settings.blob_dir
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def pending_images(frontend: FrontEnd, user: FakeUser) -> int:
    record = await frontend.uow.users.get_or_create_user("telegram", str(user.id), user.first_name)
    return len(await frontend.uow.uploads.pending_uploads(record.id))


# -- /admin ------------------------------------------------------------------------------------


async def test_group_admins_manage_their_group_and_members_are_refused(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    frontend: FrontEnd,
    ada: FakeUser,
    bob: FakeUser,
    carol: FakeUser,
    group: FakeChat,
) -> None:
    scope = f"telegram:{group.id}"
    fake.set_member_status(group, ada, "creator")
    fake.set_member_status(group, bob, "member")

    # Group admins get /admin in their command menu; everyone else the plain list.
    admin_menu = fake.commands({"type": "all_chat_administrators"})
    assert [c["command"] for c in admin_menu] == [name for name, _ in BOT_COMMANDS] + ["admin"]
    assert "admin" not in [c["command"] for c in fake.commands()]

    # A plain member: refused, and nothing changes.
    refusal = await said(fake, group, bob, "/admin quota generate 5")
    assert refusal.startswith("⚠️ Only a manager of this server or group")
    assert await quota_of(frontend, scope, "generate") is None
    refusal = await said(fake, group, bob, "/admin queue")
    assert refusal.startswith("⚠️ Only a manager")
    member_checks = [c.params for c in fake.calls("getChatMember")]
    assert member_checks == [{"chat_id": group.id, "user_id": bob.id}] * 2

    # The group's creator sets the group's quota and sees its queue...
    answer = await said(fake, group, ada, "/admin quota generate 5")
    assert answer == "Quota for generate in this server: 5 images per member a day."
    assert await quota_of(frontend, scope, "generate") == 5
    fake.set_member_status(group, bob, "administrator")
    await fake.send_text(group, ada, "/imagine a quiet harbour seed:3")
    await fake.wait_for_sent(group, lambda m: (m.text or "").startswith("Imagining"))
    # Who queued what is for the asker: it goes to Bob's private chat.
    bob_private = fake.private_chat(bob)
    note = await said(fake, group, bob, "/admin@stylebot_test_bot queue")
    assert note == "Bob, I sent you my answer in our private chat."
    listing = (await fake.wait_for_sent(bob_private)).text or ""
    assert listing.startswith("1 job(s) queued or running, 1 from this server.")
    assert "generate by Ada: queued" in listing

    # ...but pausing training is for the bot's operator only (the core's rule).
    refusal = await said(fake, group, ada, "/admin pause")
    assert refusal == "⚠️ Only the bot's operator can do that."
    assert await paused_by(frontend) is None

    # The operator need not manage the group: Carol pauses from it as a plain member.
    answer = await said(fake, group, carol, "/admin pause")
    assert answer.startswith("Training is paused")
    assert await paused_by(frontend) == f"telegram:{OPERATOR_ID}"
    refusal = await said(fake, group, ada, "/admin resume")
    assert refusal == "⚠️ Only the bot's operator can do that."
    assert await paused_by(frontend) == f"telegram:{OPERATOR_ID}"

    # Demoted, Ada loses the right at once: nothing cached it.
    fake.set_member_status(group, ada, "member")
    refusal = await said(fake, group, ada, "/admin quota generate 1")
    assert refusal.startswith("⚠️ Only a manager")
    assert await quota_of(frontend, scope, "generate") == 5

    # An anonymous admin posts as the group: no one to hold to account, so refused.
    calls_before = len(fake.calls("getChatMember"))
    anonymous = await fake.send_text(group, ada, "/admin quota train 1", as_group=True)
    assert await answer_to(fake, group, anonymous.message_id) == f"⚠️ {POSTED_AS_CHAT}"
    assert await quota_of(frontend, scope, "train") is None
    assert len(fake.calls("getChatMember")) == calls_before


async def test_the_operator_in_a_private_chat_and_bad_arguments(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    frontend: FrontEnd,
    settings: Settings,
    ada: FakeUser,
    carol: FakeUser,
) -> None:
    chat = fake.private_chat(carol)
    usage = await said(fake, chat, carol, "/admin")
    assert "/admin quota generate|train LIMIT [global]" in usage
    assert "/admin ban USER_ID" in usage

    # Bad arguments: a usage reply each, and nothing changes.
    bad = {
        "/admin quota": "Give what to limit and how many.",
        "/admin quota images 5": "not 'images'",
        "/admin quota generate 0": "a whole number from 1",
        "/admin quota generate lots global": "not 'lots'",
        "/admin quota generate 5 somewhere": "Give what to limit and how many.",
        "/admin ban": "Say whom to ban.",
        # Every @ the bot writes is broken (a zero-width non-joiner): it notifies no one.
        "/admin ban @bob": "Telegram does not let bots look up @\u200cusernames",
        "/admin unban someone": "is not a Telegram user id",
        "/admin removestyle": "Name one style.",
        "/admin pause now": "/admin pause takes nothing after it.",
        "/admin frobnicate": "Unknown admin command 'frobnicate'.",
    }
    for text, problem in bad.items():
        answer = await said(fake, chat, carol, text)
        assert answer.startswith("⚠️"), text
        assert problem in answer, (text, answer)
        assert "Nothing was changed" in answer or "Unknown admin command" in answer, text
    assert await paused_by(frontend) is None
    for kind in ("generate", "train"):
        assert await quota_of(frontend, GLOBAL_SCOPE, kind) is None
    assert count_rows(settings, "SELECT count(*) FROM bans") == 0
    assert count_rows(settings, "SELECT count(*) FROM admin_log") == 0

    # The core knows Carol as the operator: in a private chat nobody manages a group.
    assert (await said(fake, chat, carol, "/admin pause")).startswith("Training is paused")
    listing = await said(fake, chat, carol, "/admin queue")
    assert listing.startswith("0 job(s) queued or running.")
    assert f"Training is paused (by telegram:{OPERATOR_ID})" in listing
    answer = await said(fake, chat, carol, "/admin quota train 2 global")
    assert answer == "Quota for train everywhere: 2 trainings per member a day."
    assert await quota_of(frontend, GLOBAL_SCOPE, "train") == 2
    answer = await said(fake, chat, carol, "/admin quota train none global")
    assert answer == "Quota for train everywhere: no limit."
    assert await quota_of(frontend, GLOBAL_SCOPE, "train") is None
    assert (await said(fake, chat, carol, "/admin resume")).startswith("Training resumed")
    assert await paused_by(frontend) is None
    assert fake.calls("getChatMember") == [], "no group to ask about"

    # Anyone else in a private chat has no authority at all.
    private = fake.private_chat(ada)
    assert (await said(fake, private, ada, "/admin queue")).startswith("⚠️ Only a manager")
    assert (await said(fake, private, ada, "/admin pause")).startswith("⚠️ Only the bot's")
    assert await paused_by(frontend) is None


async def test_the_operator_bans_by_reply_and_the_banned_user_is_refused(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    frontend: FrontEnd,
    bob: FakeUser,
    carol: FakeUser,
    group: FakeChat,
) -> None:
    store = admin_ports(frontend).store
    await fake.send_text(group, bob, "/imagine a noisy market seed:1")
    await fake.wait_for_sent(group, lambda m: (m.text or "").startswith("Imagining"))
    [job] = await frontend.uow.jobs.active_jobs()

    # Replying to the bot's own message is not a way to ban the bot.
    bot_message = fake.sent_messages(group)[-1]
    reply = await fake.reply(group, carol, bot_message, "/admin ban")
    assert "sent by a bot" in await answer_to(fake, group, reply.message_id)

    bobs_message = await fake.send_text(group, bob, "look at this")
    # A reply that names someone else too is ambiguous: refused, not guessed.
    reply = await fake.reply(group, carol, bobs_message, "/admin ban 9999 spam")
    assert "use one or the other" in await answer_to(fake, group, reply.message_id)
    assert await store.ban_of("telegram", "9999") is None
    assert await store.ban_of("telegram", str(bob.id)) is None
    reply = await fake.reply(group, carol, bobs_message, "/admin ban spamming the group")
    answer = await answer_to(fake, group, reply.message_id)
    assert answer == f"Banned {bob.id} from the bot; 1 of their jobs cancelled."
    ban = await store.ban_of("telegram", str(bob.id))
    assert ban is not None
    assert (ban.reason, ban.banned_by) == ("spamming the group", f"telegram:{OPERATOR_ID}")
    cancelled = await frontend.uow.jobs.get_job(job.id)
    assert cancelled is not None
    assert cancelled.status is JobStatus.CANCELLED

    refusal = await said(fake, group, bob, "/styles")
    assert refusal == "⚠️ You cannot use this bot here. Ask the server's managers why."
    refusal = await said(fake, group, bob, "/imagine another market")
    assert refusal.startswith("⚠️ You cannot use this bot here")
    assert await frontend.uow.jobs.active_jobs() == []

    # Unban by id; Bob is back.
    assert await said(fake, group, carol, f"/admin unban {bob.id}") == (
        f"{bob.id} may use the bot again."
    )
    assert await store.ban_of("telegram", str(bob.id)) is None
    assert (await said(fake, group, bob, "/styles")).startswith("Bob, my answer is for you only")


# -- /optout -----------------------------------------------------------------------------------


async def test_optout_then_someone_elses_upload_of_the_same_image_is_refused(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    frontend: FrontEnd,
    settings: Settings,
    ada: FakeUser,
    bob: FakeUser,
    group: FakeChat,
    samples: list[bytes],
) -> None:
    # An album captioned /optout in a private chat: both images, no consent question.
    private = fake.private_chat(ada)
    await fake.send_album(
        private,
        ada,
        [AlbumDocument(samples[0], "a.png", "image/png"), AlbumDocument(samples[1], "b.png")],
        caption="/optout",
    )
    registered = await fake.wait_for_sent(private, lambda m: "Registered" in (m.text or ""))
    assert (registered.text or "").startswith("Registered 2 image(s).")
    assert not any(m.buttons for m in fake.sent_messages(private))
    assert await pending_images(frontend, ada) == 0
    assert stored_blobs(settings) == [], "only fingerprints are kept"

    # /optout as a reply: only to one's own message with an image.
    posted = await fake.send_document(group, ada, samples[2], "c.png", "image/png")
    reply = await fake.reply(group, bob, posted, "/optout")
    assert "only opt out images you posted yourself" in await answer_to(
        fake, group, reply.message_id
    )
    reply = await fake.reply(group, ada, posted, "/optout")
    assert (await answer_to(fake, group, reply.message_id)).startswith("Registered 1 image(s).")
    reply = await fake.send_text(group, ada, "/optout")
    assert "Nothing was registered" in await answer_to(fake, group, reply.message_id)

    # Bob's upload of any of them is refused, and nothing of his is kept.
    bobs_chat = fake.private_chat(bob)
    for index in (0, 2):
        upload = await fake.send_document(
            bobs_chat, bob, samples[index], f"mine-{index}.png", "image/png", caption="/train x"
        )
        refusal = await answer_to(fake, bobs_chat, upload.message_id)
        assert "registered with /optout" in refusal
        assert "Nothing was saved" in refusal
    assert await pending_images(frontend, bob) == 0
    assert not any(m.buttons for m in fake.sent_messages(bobs_chat))

    # Ada herself may still train on her own work.
    await fake.send_document(private, ada, samples[0], "a.png", "image/png", caption="/train own")
    question = await fake.wait_for_sent(private, lambda m: "Received 1 image(s)" in (m.text or ""))
    assert question.buttons


async def test_group_admins_review_and_remove_optouts_made_in_their_group(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    settings: Settings,
    ada: FakeUser,
    bob: FakeUser,
    group: FakeChat,
    samples: list[bytes],
) -> None:
    fake.set_member_status(group, ada, "creator")
    fake.set_member_status(group, bob, "member")
    posted = await fake.send_document(group, bob, samples[0], "c.png", "image/png")
    reply = await fake.reply(group, bob, posted, "/optout")
    assert (await answer_to(fake, group, reply.message_id)).startswith("Registered 1 image(s).")

    refusal = await said(fake, group, bob, "/admin optouts")
    assert refusal.startswith("⚠️ Only a manager")
    listing = await said(fake, group, ada, "/admin optouts")
    assert "newest first (1 shown)" in listing
    assert str(bob.id) not in listing  # who registered shows only as a code
    code = listing.split(" by ", 1)[1].split()[0]
    usage = await said(fake, group, ada, "/admin removeoptout")
    assert "Nothing was changed" in usage

    answer = await said(fake, group, ada, f"/admin removeoptout by:{code} not Bob's work")
    assert answer.startswith("Removed 1 /optout registration(s)")
    assert count_rows(settings, "SELECT COUNT(*) FROM optout_images") == 0
    removals = "SELECT COUNT(*) FROM consent_ledger WHERE kind = ?"
    assert count_rows(settings, removals, str(LedgerKind.OPTOUT_REMOVAL)) == 1


# -- the people question -----------------------------------------------------------------------


async def test_the_consent_question_asks_about_recognisable_people(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    frontend: FrontEnd,
    ada: FakeUser,
    bob: FakeUser,
    group: FakeChat,
    samples: list[bytes],
) -> None:
    ledger = frontend.bot.deps.uow.ledger
    assert ledger is not None
    ada_record = await frontend.uow.users.get_or_create_user("telegram", str(ada.id), "Ada")
    await fake.send_document(group, ada, samples[0], "p.png", "image/png", caption="/upload")
    question = await fake.wait_for_sent(group, lambda m: "Received 1 image(s)" in (m.text or ""))
    assert "recognisable people" in (question.text or "")
    people = [(label, data) for label, data in question.buttons if data and data[:3] == "cp|"]
    assert people == [
        ("No recognisable people", f"cp|{ada.id}||n"),
        ("Recognisable people, and each of them agreed", f"cp|{ada.id}||y"),
        ("Recognisable people who did not agree", f"cp|{ada.id}||x"),
    ]
    # Only Ada may answer.
    answer = await fake.press_and_answer(group, bob, question, f"cp|{ada.id}||n")
    assert (answer.get("text"), answer.get("show_alert")) == (NOT_YOURS, True)

    # People who did not agree: the core refuses at Confirm, nothing is recorded and the
    # images wait for Ada to remove them or to confirm that they agreed.
    await fake.press_button(group, ada, question, f"cp|{ada.id}||x")
    question = await fake.wait_for_sent(
        group, lambda m: f"cl|{ada.id}|own-work|x" in [d for _, d in m.buttons]
    )
    await fake.press_button(group, ada, question, f"cl|{ada.id}|own-work|x")
    question = await fake.wait_for_sent(
        group, lambda m: f"cy|{ada.id}|own-work|x" in [d for _, d in m.buttons]
    )
    assert ("✓ Recognisable people who did not agree", f"cp|{ada.id}|own-work|x") in (
        question.buttons
    )
    assert all(len(data.encode()) <= 64 for _, data in question.buttons if data)
    await fake.press_button(group, ada, question, f"cy|{ada.id}|own-work|x")
    closed = await fake.wait_for_sent(
        group, lambda m: m.message_id == question.message_id and not m.buttons
    )
    assert "⚠️ Recognisable people in the images must have agreed" in (closed.text or "")
    assert await frontend.uow.consents.latest_consent(ada_record.id) is None
    assert [e for e in await ledger.entries() if e.kind == LedgerKind.CONSENT] == []
    assert await pending_images(frontend, ada) == 1

    # Asked again, with everyone's agreement: recorded as given.
    asked = await fake.send_text(group, ada, "/consent")
    question = await fake.wait_for_sent(
        group,
        lambda m: m.message_id > asked.message_id and f"cy|{ada.id}|" in [d for _, d in m.buttons],
    )
    await fake.press_button(group, ada, question, f"cp|{ada.id}||y")
    question = await fake.wait_for_sent(
        group, lambda m: f"cl|{ada.id}|own-work|y" in [d for _, d in m.buttons]
    )
    await fake.press_button(group, ada, question, f"cl|{ada.id}|own-work|y")
    question = await fake.wait_for_sent(
        group, lambda m: f"cy|{ada.id}|own-work|y" in [d for _, d in m.buttons]
    )
    await fake.press_button(group, ada, question, f"cy|{ada.id}|own-work|y")
    await fake.wait_for_sent(group, lambda m: "Consent recorded" in (m.text or ""))
    closed = next(m for m in fake.sent_messages(group) if m.message_id == question.message_id)
    assert "Confirmed by Ada: My own work; Recognisable people, and each of them agreed." in (
        closed.text or ""
    )
    consent = await frontend.uow.consents.latest_consent(ada_record.id)
    assert consent is not None
    assert consent.licence == "own-work"
    [entry] = [e for e in await ledger.entries() if e.kind == LedgerKind.CONSENT]
    assert entry.payload["consent_id"] == consent.id
    assert (entry.payload["identifiable_people"], entry.payload["people_agreed"]) == (True, True)


# -- /forgetme ---------------------------------------------------------------------------------


def erase_buttons(message: StoredMessage) -> list[tuple[str, str | None]]:
    return [(t, d) for t, d in message.buttons if d and d.startswith(("ey|", "en|"))]


async def test_forgetme_asks_only_the_asker_and_confirm_erases(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    frontend: FrontEnd,
    settings: Settings,
    ada: FakeUser,
    bob: FakeUser,
    group: FakeChat,
    samples: list[bytes],
) -> None:
    private = fake.private_chat(ada)  # Ada has pressed Start in a chat with the bot
    await fake.send_document(group, ada, samples[0], "f.png", "image/png", caption="/upload")
    await fake.wait_for_sent(group, lambda m: "Received 1 image(s)" in (m.text or ""))
    assert len(stored_blobs(settings)) == 1
    users = "SELECT count(*) FROM users WHERE platform = 'telegram' AND platform_user_id = ?"
    assert count_rows(settings, users, str(ada.id)) == 1

    refusal = await said(fake, group, ada, "/forgetme everything")
    assert refusal.startswith("⚠️ /forgetme takes nothing, or the word confirm")

    # Asked in the group, the question (all her styles, private ones too) goes to Ada's
    # private chat; the group only reads where it went.
    note = await said(fake, group, ada, "/forgetme")
    assert note == "Ada, I sent you the /forgetme question in our private chat."
    question = await fake.wait_for_sent(private, lambda m: bool(m.buttons))
    assert question.buttons == [("Erase everything", f"ey|{ada.id}"), ("Keep it", f"en|{ada.id}")]
    assert (question.text or "").startswith("This erases everything of yours here")
    assert [m for m in fake.sent_messages(group) if erase_buttons(m)] == []
    assert [m for m in fake.sent_messages(group) if "This erases" in (m.text or "")] == []

    # The buttons still refuse anyone but the asker; Keep leaves everything.
    answer = await fake.press_and_answer(private, bob, question, f"ey|{ada.id}")
    assert answer.get("show_alert") is True
    assert count_rows(settings, users, str(ada.id)) == 1
    await fake.press_button(private, ada, question, f"en|{ada.id}")
    kept = await fake.wait_for_sent(
        private, lambda m: m.message_id == question.message_id and not m.buttons
    )
    assert "nothing was erased" in (kept.text or "")
    assert count_rows(settings, users, str(ada.id)) == 1
    assert len(stored_blobs(settings)) == 1

    await said(fake, group, ada, "/forgetme")
    question = await fake.wait_for_sent(
        private, lambda m: m.message_id > question.message_id and bool(m.buttons)
    )
    await fake.press_button(private, ada, question, f"ey|{ada.id}")
    erased = await fake.wait_for_sent(
        private, lambda m: m.message_id == question.message_id and not m.buttons
    )
    assert "Erased: 0 style(s), 1 reference image(s)" in (erased.text or "")
    assert count_rows(settings, users, str(ada.id)) == 0
    assert stored_blobs(settings) == []
    assert [m for m in fake.sent_messages(group) if "Erased" in (m.text or "")] == []


async def test_forgetme_in_a_group_with_a_closed_private_chat_only_says_how_to_open_it(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    settings: Settings,
    ada: FakeUser,
    group: FakeChat,
    samples: list[bytes],
) -> None:
    await fake.send_document(group, ada, samples[0], "f.png", "image/png", caption="/upload")
    await fake.wait_for_sent(group, lambda m: "Received 1 image(s)" in (m.text or ""))

    hint = await said(fake, group, ada, "/forgetme")  # Ada never started a chat with the bot

    assert hint.startswith("Ada, the /forgetme question is for you only")
    assert telegram.application is not None
    assert f"@{telegram.application.bot.username}" in hint
    assert "press Start" in hint
    assert [m for m in fake.sent_messages(group) if erase_buttons(m)] == []
    assert [m for m in fake.sent_messages(group) if "This erases" in (m.text or "")] == []
    assert len(stored_blobs(settings)) == 1

    # Once she has, /forgetme in the private chat asks there, as it always did.
    private = fake.private_chat(ada)
    asked = await fake.send_text(private, ada, "/forgetme")
    question = await fake.wait_for_sent(private, lambda m: bool(m.buttons))
    assert question.api["reply_to_message"]["message_id"] == asked.message_id
    assert question.buttons == [("Erase everything", f"ey|{ada.id}"), ("Keep it", f"en|{ada.id}")]
