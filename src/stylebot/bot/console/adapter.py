"""The console front end: typed /commands in, replies printed, images saved as files.

It reads lines from standard input, so it works as an interactive REPL and
with a piped script. When reading a script it waits for the jobs a command
queued before it reads the next line, so `/train` then `/imagine` just works.

What it prints holds user text (prompts, file names), so every line goes out
without terminal control: escape sequences and control characters are dropped,
or a prompt could clear the screen, retitle the window or hide what came before.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TextIO

from stylebot.bot.core import grammar, replies
from stylebot.bot.core.admin_commands import AdminCommand
from stylebot.bot.core.commands import Command, IncomingFile, OptOut, UploadImages, Verify
from stylebot.bot.core.errors import CommandSyntaxError
from stylebot.bot.core.mentions import typed
from stylebot.bot.core.model import Requester
from stylebot.bot.core.platform_core import PlatformCore
from stylebot.bot.core.service import StyleBot

_CONSOLE_USER = re.compile(r"[A-Za-z0-9._-]{1,32}")
#: The typed commands (stylebot.bot.core.grammar) the console offers: HELP lists them.
CONSOLE_COMMANDS = (
    "upload",
    "consent",
    "captions",
    "discard",
    "train",
    "imagine",
    "restyle",
    "extend",
    "repaint",
    "sketch",
    "styles",
    "style",
    "status",
    "cancel",
    "verify",
    "optout",
    "forgetme",
    "as",
    "help",
    "quit",
    "exit",
)

HELP = """\
Commands:
  /upload PATH... [caption:TEXT]
                               add reference images (PNG, JPEG or WebP), captioned TEXT
  /captions [NUMBER CAPTION]   the waiting images' captions; change one (- clears it)
  /captions STYLE              the captions a style of yours trained on
  /captions auto               have the captioner suggest captions for the waiting images
  /captions accept [NUMBER]    make the suggestions (or one) the images' captions
  /consent LICENCE             confirm you made the images or hold the rights, and pick a licence
  /discard                     forget the images waiting for training
  /train NAME [variant:KIND]   train a style from the waiting images (KIND: lora, dora, lokr)
  /imagine PROMPT [style:NAME] [negative:TEXT] [seed:N] [steps:N] [size:WxH] [count:N]
  /restyle PATH style:NAME [strength:0.6] [PROMPT]
                               draw a picture again in a style (add confirm:yes for a
                               picture that is not a stylebot image of yours)
  /extend PATH style:NAME [zoom:1.5|2 or shape:square|portrait] [confirm:yes] [PROMPT]
                               the picture on a larger canvas, the new area drawn in the style
  /repaint PATH style:NAME region:LEFT,TOP,WIDTH,HEIGHT [confirm:yes] PROMPT
                               a region (in percent) of the picture drawn anew in the style;
                               or mask:MASKPATH for region: where the mask is white
  /sketch PATH style:NAME [follow:edges|depth] [strength:1] [confirm:yes] PROMPT
                               PROMPT drawn in the style along the picture's edges
                               (or following its depth)
  /styles                      the styles you can use
  /style info|share|unshare|delete|export NAME
                               manage a style (share NAME public: share with everyone)
  /status                      your queued and running jobs
  /cancel [JOB]                cancel your newest job, or the one named
  /verify PATH                 trace an image back to the record its watermark points to
  /optout PATH...              register images you made: nobody else may train on copies
  /forgetme [confirm]          erase everything of yours (asks first; confirm to do it)
  /as NAME                     act as another user from here on (to try limits and turns)
  /help                        this text
  /quit                        leave"""


# ESC sequences: CSI (colours, cursor, clearing), OSC (window title, hyperlinks, up to
# BEL or ST), and the two-character ones; then single control characters but newline
# and tab (carriage return and backspace overwrite), DEL, C1 controls (0x9b is a CSI
# of its own), and the bidirectional overrides that reorder what is shown.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]?|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[PX^_][^\x1b]*(?:\x1b\\)?|[ -~]?)"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """``text`` without anything a terminal would act on rather than show."""
    return _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", text))


class ConsoleAdapter:
    def __init__(
        self,
        bot: StyleBot,
        out: TextIO,
        images_dir: Path,
        *,
        user: str = "console-user",
        max_read_bytes: int = 20 * 1024 * 1024,
        job_timeout_s: float = 6 * 3600,
        is_alive: Callable[[], str | None] | None = None,
    ) -> None:
        self.bot = PlatformCore(bot, typed)
        self.out = out
        self.images_dir = images_dir
        self.requester = _console_user(user)
        self.max_read_bytes = max_read_bytes
        self.job_timeout_s = job_timeout_s
        # Returns why the jobs cannot finish (the worker died), or None.
        self.is_alive = is_alive or (lambda: None)
        self.saved_images: list[Path] = []
        self.last_reply: replies.Reply | None = None
        self._done: dict[str, asyncio.Event] = {}

    # -- input ----------------------------------------------------------------

    async def run(self, lines: AsyncIterator[str], *, wait_for_jobs: bool) -> int:
        """Execute lines until /quit or end of input. Returns an exit status."""
        status = 0
        async for line in lines:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            outcome = await self.execute(line)
            if outcome == "quit":
                break
            if outcome == "error":
                status = 1
            if wait_for_jobs and not await self.wait_for_jobs():
                return 1
        return status

    async def execute(self, line: str) -> str:
        """Run one line; returns "ok", "error" or "quit"."""
        parsed = grammar.split_command(line)
        if parsed is None:
            self._print("Commands start with '/'. Type /help for the list.")
            return "error"
        try:
            if parsed.name not in CONSOLE_COMMANDS:
                raise ValueError(f"Unknown command /{parsed.name}. Type /help for the list.")
            command = grammar.parse(parsed, self.requester)
            if isinstance(command, grammar.Quit):
                return "quit"
            if isinstance(command, grammar.ShowHelp):
                self._print(HELP)
                return "ok"
            if isinstance(command, grammar.ActAs):
                self.requester = _console_user(command.name)
                self._print(f"You are now {command.name}.")
                return "ok"
            command = self._with_files(command)
        except (CommandSyntaxError, ValueError) as exc:
            self._print(f"! {exc}")
            return "error"
        reply = await self.bot.handle(command)
        self.last_reply = reply
        if isinstance(reply, replies.JobQueued):
            self._done.setdefault(reply.job_id, asyncio.Event())
        self.show(reply)
        return "error" if isinstance(reply, replies.ErrorReply) else "ok"

    def _with_files(
        self,
        parsed: Command
        | AdminCommand
        | grammar.NeedsFiles
        | grammar.AskConsent
        | grammar.RestyleArgs,
    ) -> Command | AdminCommand:
        """The parsed line, with the files it names read (the console's part)."""
        match parsed:
            case grammar.AskConsent():
                raise ValueError("Name a licence: /consent own-work (see the list above)")
            case grammar.RestyleArgs(words=words):
                if not words:
                    raise ValueError("Give the picture first, e.g. /restyle photo.jpg style:NAME")
                mask = None if parsed.mask_path is None else self._read(Path(parsed.mask_path))
                return parsed.command(self.requester, self._read(Path(words[0])), words[1:], mask)
            case grammar.NeedsFiles(verb="verify", paths=paths):
                if len(paths) != 1:
                    raise ValueError("Give one image to check: /verify image.png")
                return Verify(self.requester, self._read(Path(paths[0])))
            case grammar.NeedsFiles(verb=verb, paths=paths, caption=caption):
                if not paths:
                    raise ValueError(f"Give the image files: /{verb} a.png b.jpg")
                if verb == "optout":
                    return OptOut(self.requester, tuple(self._read(Path(p)) for p in paths))
                return UploadImages(
                    self.requester, tuple(self._read(Path(p), caption) for p in paths)
                )
        return parsed

    def _read(self, path: Path, caption: str | None = None) -> IncomingFile:
        """Read a file the user named, refusing directories and oversized files early."""
        if not path.is_file():
            raise ValueError(f"{path} is not a file I can read.")
        with path.open("rb") as handle:
            # One byte over the limit is enough for the core to say "too large".
            data = handle.read(self.max_read_bytes + 1)
        return IncomingFile(path.name, data, caption)

    # -- output ---------------------------------------------------------------

    async def notify(self, notification: replies.Notification) -> None:
        # Named commands spelled as typed here, as in answers (Discord and Telegram do too).
        notification = self.bot.spelled(notification)
        # Every console user shares this terminal: say whose news it is when it is not
        # the current user's.
        if notification.to.user_id != self.requester.user_id:
            self._print(f"[for {notification.to.user_id}]")
        self.show(notification.reply)
        job_id = getattr(notification.reply, "job_id", None)
        if isinstance(notification.reply, replies.JobFinished | replies.ImagesReady) and job_id:
            self._done.setdefault(job_id, asyncio.Event()).set()

    def show(self, reply: replies.Reply) -> None:
        match reply:
            case replies.ErrorReply(text=text):
                self._print(f"! {text}")
            case replies.ConsentRequest():
                licences = "\n".join(f"  {lic.id:<14} {lic.label}" for lic in reply.licences)
                self._print(
                    f"{reply.text}\n\nTerms (version {reply.terms_version}): {reply.terms}\n\n"
                    f"Licences:\n{licences}\nType /consent LICENCE to confirm, "
                    "e.g. /consent own-work"
                )
            case replies.ErasureConfirmation():
                self._print(f"{reply.text}\nType /forgetme confirm to erase it all.")
            case replies.FileReply():
                self.images_dir.mkdir(parents=True, exist_ok=True)
                path = self.images_dir / reply.filename
                path.write_bytes(reply.data)
                self._print(f"{reply.text}\n  saved {path}")
            case replies.ImagesReady():
                self.images_dir.mkdir(parents=True, exist_ok=True)
                lines = [reply.text]
                for image in reply.images:
                    path = self.images_dir / image.filename
                    path.write_bytes(image.data)
                    self.saved_images.append(path)
                    lines.append(f"  saved {path}")
                self._print("\n".join(lines))
            case (
                replies.JobProgress()
                | replies.JobQueued()
                | replies.JobFinished()
                | replies.TextReply()
                | replies.VerifyReport()
            ):
                self._print(reply.text)

    def _print(self, text: str) -> None:
        print(terminal_safe(text), file=self.out, flush=True)

    async def wait_for_jobs(self) -> bool:
        """Wait until every job this console queued has ended. False if it never will."""
        pending = [event for event in self._done.values() if not event.is_set()]
        deadline = asyncio.get_running_loop().time() + self.job_timeout_s
        while pending:
            problem = self.is_alive()
            if problem:
                self._print(f"! {problem}")
                return False
            if asyncio.get_running_loop().time() > deadline:
                self._print("! Timed out waiting for the worker.")
                return False
            await asyncio.wait(
                [asyncio.ensure_future(e.wait()) for e in pending],
                timeout=1.0,
                return_when=asyncio.FIRST_COMPLETED,
            )
            pending = [event for event in pending if not event.is_set()]
        return True


def console_user_name(name: str) -> str:
    """A console user's name, as `--user` and `/as` take it."""
    if not _CONSOLE_USER.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a console user name: 1 to 32 letters, digits, '.', '_' or '-'."
        )
    return name


def _console_user(name: str) -> Requester:
    name = console_user_name(name)
    return Requester("console", name, name, chat_id="console")


async def stdin_lines(stream: TextIO, prompt: str | None, out: TextIO) -> AsyncIterator[str]:
    """Lines from a blocking stream, read on a daemon thread so Ctrl-C never waits on it."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def pump() -> None:
        for line in stream:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, daemon=True, name="stdin").start()
    while True:
        if prompt:
            print(prompt, end="", file=out, flush=True)
        line = await queue.get()
        if line is None:
            return
        yield line
