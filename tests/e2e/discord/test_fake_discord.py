"""The real discord.py client against :class:`FakeDiscord`: proof the fake is usable.

Each test starts an unmodified ``discord.Client`` with an ``app_commands.CommandTree``
that logs in, syncs its commands and connects to the fake's gateway, then drives
it the way Discord would (slash commands, autocomplete, buttons, context menus)
and asserts on what the fake recorded: request bodies and uploaded files' bytes.
Errors inside commands never crash discord.py, so the tree's and views'
``on_error`` collect them and every test fails if any were raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import discord
import pytest
from discord import app_commands
from PIL import Image
from tests.fakes import discord_limits
from tests.fakes.discord_api import (
    FakeChannel,
    FakeDiscord,
    FakeFile,
    FakeGuild,
    FakeUser,
)

pytestmark = pytest.mark.timeout(60)

STYLES = ["watercolor", "ink wash", "pixel art", "woodcut"]
CONSENT_ID = "stylebot:consent:yes"


def png_bytes(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    """A real PNG, so size parsing and byte-exact round trips are meaningful."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


class ConsentView(discord.ui.View):
    """A persistent view: ``timeout=None`` and a fixed custom_id survive restarts."""

    def __init__(self, errors: list[BaseException]) -> None:
        super().__init__(timeout=None)
        self.errors = errors

    @discord.ui.button(label="I consent", style=discord.ButtonStyle.green, custom_id=CONSENT_ID)
    async def consent(
        self, interaction: discord.Interaction, button: discord.ui.Button[ConsentView]
    ) -> None:
        await interaction.response.edit_message(
            content=f"consent recorded for {interaction.user.name}", view=None
        )

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[ConsentView]
    ) -> None:
        self.errors.append(error)


@dataclass
class Bot:
    """A tiny bot built only from discord.py, plus what its commands observed."""

    client: discord.Client
    tree: app_commands.CommandTree[discord.Client]
    errors: list[BaseException] = field(default_factory=list)
    stashed: list[discord.Interaction] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)


def build_bot(guild_id: int, *, sync: bool) -> Bot:
    """Define the commands the tests exercise; ``sync`` syncs them to the guild on startup."""
    client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    tree = app_commands.CommandTree(client)
    bot = Bot(client=client, tree=tree)
    guild = discord.Object(id=guild_id)

    @tree.error
    async def on_tree_error(
        interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        bot.errors.append(error)

    @tree.command(name="imagine", description="Generate from a prompt and a reference image")
    async def imagine(
        interaction: discord.Interaction, prompt: str, image: discord.Attachment
    ) -> None:
        await interaction.response.defer(thinking=True)
        data = await image.read()
        result = discord.File(io.BytesIO(data[::-1]), filename="result.png")
        await interaction.followup.send(
            f"{prompt}: {image.filename} {len(data)} bytes", file=result
        )

    @tree.command(name="style", description="Pick one of your styles")
    async def style(interaction: discord.Interaction, name: str) -> None:
        await interaction.response.send_message(f"using style {name}")

    @style.autocomplete("name")
    async def style_autocomplete(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=s, value=s) for s in STYLES if current in s]

    @tree.command(name="consent", description="Ask for consent")
    async def consent(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("Do you consent?", view=ConsentView(bot.errors))

    @tree.command(name="slow", description="Defers and waits for the test")
    async def slow(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        bot.stashed.append(interaction)

    @tree.context_menu(name="Use as reference")
    async def use_as_reference(interaction: discord.Interaction, message: discord.Message) -> None:
        sizes = [len(await a.read()) for a in message.attachments]
        await interaction.response.send_message(
            f"reference {message.id}: {message.content!r} {sizes}", ephemeral=True
        )

    async def setup_hook() -> None:
        client.add_view(ConsentView(bot.errors))
        tree.copy_global_to(guild=guild)
        if sync:
            await tree.sync(guild=guild)

    client.setup_hook = setup_hook  # type: ignore[method-assign]
    return bot


@contextlib.asynccontextmanager
async def running(fake: FakeDiscord, bot: Bot) -> AsyncIterator[Bot]:
    """Run the client against the fake until the block ends, then close it cleanly."""
    identifies = fake.identify_count + 1
    task = asyncio.create_task(bot.client.start(fake.token))
    try:
        ready = asyncio.create_task(fake.wait_ready(identifies=identifies))
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():  # login or connect failed: surface discord.py's own error
            ready.cancel()
            task.result()
        await ready
        await asyncio.wait_for(bot.client.wait_until_ready(), 10)
        yield bot
    finally:
        await bot.client.close()
        await asyncio.wait_for(task, 10)
    assert bot.errors == [], f"errors inside the bot: {bot.errors!r}"


@pytest.fixture
def alice() -> FakeUser:
    return FakeUser(username="alice")


@pytest.fixture
def general() -> FakeChannel:
    return FakeChannel(name="general")


@pytest.fixture
def guild(alice: FakeUser, general: FakeChannel) -> FakeGuild:
    return FakeGuild(
        name="Style Club", channels=[general, FakeChannel(name="gallery")], members=[alice]
    )


@pytest.fixture
async def fake(guild: FakeGuild) -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(guilds=[guild]) as server:
        yield server
    assert server.unhandled == [], f"routes the fake does not serve: {server.unhandled!r}"


async def test_startup_logs_in_and_syncs_commands_to_the_guild(
    fake: FakeDiscord, guild: FakeGuild
) -> None:
    async with running(fake, build_bot(guild.id, sync=True)) as bot:
        assert bot.client.user is not None
        assert bot.client.user.id == fake.bot_user.id
        cached = bot.client.get_guild(guild.id)
        assert cached is not None
        assert {c.name for c in cached.text_channels} == {"general", "gallery"}

    sync = next(r for r in fake.requests if r.method == "PUT")
    assert sync.path == f"/applications/{fake.application_id}/guilds/{guild.id}/commands"
    assert {(c["name"], c.get("type", 1)) for c in sync.json} == {
        ("imagine", 1),
        ("style", 1),
        ("consent", 1),
        ("slow", 1),
        ("Use as reference", 3),
    }
    imagine = next(c for c in fake.commands(guild.id) if c["name"] == "imagine")
    assert [(o["name"], o["type"]) for o in imagine["options"]] == [("prompt", 3), ("image", 11)]
    assert int(imagine["id"]) > 0
    identify = next(p for p in fake.gateway_received if p["op"] == 2)
    assert identify["d"]["token"] == fake.token


async def test_slash_command_defers_reads_attachment_and_follows_up_with_file(
    fake: FakeDiscord, guild: FakeGuild, general: FakeChannel, alice: FakeUser
) -> None:
    upload = png_bytes(4, 3, (200, 10, 10))
    async with running(fake, build_bot(guild.id, sync=True)):
        sent = await fake.send_slash_command(
            guild.id,
            general.id,
            alice,
            "imagine",
            options={"prompt": "a red square", "image": FakeFile("ref.png", upload)},
        )
        callback = await sent.callback()
        followup = await sent.followup()

    assert callback.status == 200
    assert callback.json["type"] == 5
    assert callback.response["interaction"]["id"] == str(sent.id)
    attachment = sent.payload["data"]["resolved"]["attachments"][
        sent.payload["data"]["options"][1]["value"]
    ]
    assert (attachment["width"], attachment["height"]) == (4, 3)
    download = next(r for r in fake.requests if r.path.startswith("/attachments/"))
    assert download.status == 200
    assert download.path.endswith(f"/{attachment['id']}/ref.png")

    assert followup.json["content"] == f"a red square: ref.png {len(upload)} bytes"
    assert [f.filename for f in followup.files] == ["result.png"]
    assert followup.files[0].data == upload[::-1]
    stored = followup.response["attachments"][0]
    assert fake.attachment_bytes(int(stored["id"])) == upload[::-1]
    original = sent.original_message()
    assert original is not None
    assert original["flags"] & 128  # still "thinking": the bot never edited it


async def test_autocomplete_offers_matching_choices_then_the_command_runs(
    fake: FakeDiscord, guild: FakeGuild, general: FakeChannel, alice: FakeUser
) -> None:
    async with running(fake, build_bot(guild.id, sync=True)):
        asked = await fake.send_autocomplete(
            guild.id, general.id, alice, "style", options={"name": "wa"}, focused="name"
        )
        suggestions = await asked.callback()
        used = await fake.send_slash_command(
            guild.id, general.id, alice, "style", {"name": "ink wash"}
        )
        reply = await used.callback()

    assert suggestions.json == {
        "type": 8,
        "data": {
            "choices": [
                {"name": "watercolor", "value": "watercolor"},
                {"name": "ink wash", "value": "ink wash"},
            ]
        },
    }
    assert reply.json["type"] == 4
    assert reply.json["data"]["content"] == "using style ink wash"
    assert [m["content"] for m in fake.channel_messages(general.id)] == ["using style ink wash"]


async def test_persistent_button_works_after_the_client_restarts(
    fake: FakeDiscord, guild: FakeGuild, general: FakeChannel, alice: FakeUser
) -> None:
    async with running(fake, build_bot(guild.id, sync=True)):
        asked = await fake.send_slash_command(guild.id, general.id, alice, "consent")
        await asked.callback()
    message = asked.original_message()
    assert message is not None
    assert message["components"][0]["components"][0]["custom_id"] == CONSENT_ID

    # A brand-new client (new process in production) that only re-registers the view.
    async with running(fake, build_bot(guild.id, sync=False)):
        pressed = await fake.press_button(int(message["id"]), CONSENT_ID, alice)
        update = await pressed.callback()

    assert fake.identify_count == 2
    assert update.status == 200
    assert update.json["type"] == 7
    assert update.json["data"]["content"] == "consent recorded for alice"
    assert update.json["data"]["components"] == []
    assert fake.messages[int(message["id"])]["content"] == "consent recorded for alice"


async def test_message_context_menu_reads_the_target_message(
    fake: FakeDiscord, guild: FakeGuild, general: FakeChannel, alice: FakeUser
) -> None:
    picture = png_bytes(8, 8, (0, 0, 255))
    async with running(fake, build_bot(guild.id, sync=True)):
        target = await fake.send_user_message(
            general.id, alice, "my cat", files=[FakeFile("cat.png", picture)]
        )
        sent = await fake.send_message_command(
            guild.id, general.id, alice, "Use as reference", target=int(target["id"])
        )
        reply = await sent.callback()

    assert sent.payload["data"]["type"] == 3
    assert reply.json["data"]["content"] == f"reference {target['id']}: 'my cat' [{len(picture)}]"
    assert reply.json["data"]["flags"] == 64
    original = sent.original_message()
    assert original is not None
    assert original["flags"] & 64


async def test_channel_send_with_file_and_fallback_to_dm_when_channel_is_gone(
    fake: FakeDiscord, guild: FakeGuild, general: FakeChannel, alice: FakeUser
) -> None:
    grid = png_bytes(16, 16, (0, 255, 0))
    async with running(fake, build_bot(guild.id, sync=True)) as bot:
        channel = bot.client.get_channel(general.id)
        assert isinstance(channel, discord.TextChannel)
        sent = await channel.send(
            "your grid", file=discord.File(io.BytesIO(grid), filename="grid.png")
        )
        assert await sent.attachments[0].read() == grid
        assert sent.attachments[0].url.startswith(fake.base_url)

        fake.delete_channel(general.id)
        with pytest.raises(discord.NotFound) as gone:
            await channel.send("again")
        user = await bot.client.fetch_user(alice.id)
        dm = await user.send(
            "the channel is gone, here it is", file=discord.File(io.BytesIO(grid), "grid.png")
        )

    post = next(
        r
        for r in fake.requests
        if r.method == "POST" and r.path == f"/channels/{general.id}/messages"
    )
    assert post.json["content"] == "your grid"
    assert post.files[0].data == grid
    assert gone.value.code == 10003
    dm_channel = fake.dm_channel_id(alice)
    assert dm.channel.id == dm_channel
    dm_post = next(r for r in fake.requests if r.path == f"/channels/{dm_channel}/messages")
    assert dm_post.files[0].data == grid
    assert [m["content"] for m in fake.channel_messages(dm_channel)] == [
        "the channel is gone, here it is"
    ]


async def test_follow_up_with_an_expired_token_fails_like_discord(
    fake: FakeDiscord, guild: FakeGuild, general: FakeChannel, alice: FakeUser
) -> None:
    async with running(fake, build_bot(guild.id, sync=True)) as bot:
        sent = await fake.send_slash_command(guild.id, general.id, alice, "slow")
        await sent.callback()
        await fake.wait_until(lambda: bool(bot.stashed), timeout=5, what="the command to run")
        interaction = bot.stashed[0]
        await interaction.followup.send("still fresh")

        fake.expire_token(sent.token)
        with pytest.raises(discord.NotFound) as expired:
            await interaction.followup.send("15 minutes later")
        with pytest.raises(discord.NotFound):
            await interaction.edit_original_response(content="too late")

    assert expired.value.code == 10015
    statuses = [
        r.status for r in fake.requests if r.path.startswith(f"/webhooks/{fake.application_id}/")
    ]
    assert statuses == [200, 404, 404]


async def test_gateway_resume_and_reidentify_keep_commands_working(
    fake: FakeDiscord, guild: FakeGuild, general: FakeChannel, alice: FakeUser
) -> None:
    async with running(fake, build_bot(guild.id, sync=True)):
        await fake.restart_gateway(resume=True)
        after_resume = await fake.send_slash_command(
            guild.id, general.id, alice, "style", {"name": "woodcut"}
        )
        resumed_reply = await after_resume.callback()

        await fake.restart_gateway(resume=False)
        after_identify = await fake.send_slash_command(
            guild.id, general.id, alice, "style", {"name": "pixel art"}
        )
        identified_reply = await after_identify.callback()

    assert fake.resume_count == 1
    assert fake.identify_count == 2
    assert [p["op"] for p in fake.gateway_received].count(6) == 2  # second RESUME was refused
    assert resumed_reply.json["data"]["content"] == "using style woodcut"
    assert identified_reply.json["data"]["content"] == "using style pixel art"


async def test_fake_refuses_interactions_discord_could_not_send(
    fake: FakeDiscord, guild: FakeGuild, general: FakeChannel, alice: FakeUser
) -> None:
    async with running(fake, build_bot(guild.id, sync=True)):
        with pytest.raises(LookupError):
            await fake.send_slash_command(guild.id, general.id, alice, "not-a-command")
        with pytest.raises(ValueError, match="missing"):
            await fake.send_slash_command(guild.id, general.id, alice, "imagine", {"prompt": "x"})
        sent = await fake.send_slash_command(
            guild.id, general.id, alice, "style", {"name": "woodcut"}
        )
        first = await sent.callback()

    assert first.status == 200
    assert sum(1 for r in fake.requests if r.path.endswith("/callback")) == 1


async def test_fake_refuses_what_discord_refuses_over_its_limits(
    fake: FakeDiscord, guild: FakeGuild, general: FakeChannel
) -> None:
    def button_with_id(custom_id: str) -> discord.ui.View:
        view = discord.ui.View(timeout=None)
        view.add_item(discord.ui.Button(label="go", custom_id=custom_id))
        return view

    too_long: list[tuple[str, dict[str, object]]] = [
        ("content", {"content": "x" * 2001}),
        ("embeds.0.description", {"embed": discord.Embed(description="d" * 4097)}),
        ("embeds.0.title", {"embed": discord.Embed(title="t" * 257)}),
        ("embeds", {"embed": discord.Embed(description="d" * 4000).set_footer(text="f" * 2001)}),
        ("components.0.components.0.custom_id", {"view": button_with_id("c" * 101)}),
    ]
    async with running(fake, build_bot(guild.id, sync=True)) as bot:
        channel = bot.client.get_channel(general.id)
        assert isinstance(channel, discord.TextChannel)
        for path, kwargs in too_long:
            with pytest.raises(discord.HTTPException) as refused:
                await channel.send(**kwargs)  # type: ignore[arg-type]
            assert (refused.value.status, refused.value.code) == (400, 50035)
            assert f"({path}:" in refused.value.text, path
        # At the limits exactly, all of it goes through.
        await channel.send(
            "x" * 2000,
            embed=discord.Embed(title="t" * 256, description="d" * 3000),
            view=button_with_id("c" * 100),
        )
    assert len(fake.channel_messages(general.id)) == 1


async def test_fake_refuses_uploads_over_discords_size_and_count(
    fake: FakeDiscord, guild: FakeGuild, general: FakeChannel
) -> None:
    # 10 MiB together is the most a message's files may be (no server boosts).
    half = discord_limits.ATTACHMENTS_TOTAL_BYTES // 2

    def files(*sizes: int) -> list[discord.File]:
        return [discord.File(io.BytesIO(b"\0" * size), f"f{n}.bin") for n, size in enumerate(sizes)]

    async with running(fake, build_bot(guild.id, sync=True)) as bot:
        channel = bot.client.get_channel(general.id)
        assert isinstance(channel, discord.TextChannel)
        with pytest.raises(discord.HTTPException) as too_large:
            await channel.send("two halves and a byte", files=files(half, half + 1))
        with pytest.raises(discord.HTTPException) as too_many:
            await channel.send("eleven", files=files(*[1] * 11))
        # At the limits exactly, they go through.
        await channel.send("two halves", files=files(half, half))
        await channel.send("ten", files=files(*[1] * 10))

    assert (too_large.value.status, too_large.value.code) == (413, 40005)
    assert (too_many.value.status, too_many.value.code) == (400, 50035)
    assert [len(m["attachments"]) for m in fake.channel_messages(general.id)] == [2, 10]
