"""``/admin SUBCOMMAND ...`` as typed (Telegram), turned into the core's admin commands;
the admin part of the typed grammar (stylebot.bot.core.grammar).

Parsing only: who may do what is the core's decision (stylebot.bot.core.admin). A typing
mistake gets the usage of that subcommand and builds no command, so it changes nothing.
Whether the sender manages the group is asked of the platform afterwards, and only for
the commands that take it (see ``needs_manager_check``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeGuard

from stylebot.bot.core.admin import QUOTA_KINDS
from stylebot.bot.core.admin_commands import (
    AdminCommand,
    BanUser,
    ListOptOuts,
    PauseTraining,
    RemoveOptOuts,
    RemoveSharedStyle,
    ResumeTraining,
    SetQuota,
    ShowQueue,
    UnbanUser,
)
from stylebot.bot.core.errors import CommandSyntaxError
from stylebot.bot.core.model import Requester
from stylebot.bot.core.names import printable

QUOTA_LIFTED = ("none", "off")
QUOTA_EVERYWHERE = ("global", "everywhere")

USAGE: dict[str, str] = {
    "pause": "/admin pause — workers take no new training until resumed (operator)",
    "resume": "/admin resume — trainings start again (operator)",
    "quota": (
        "/admin quota generate|train LIMIT [global] — at most LIMIT images or trainings per "
        "member a day in this group (managers), or with global everywhere (operator); "
        "LIMIT none lifts it"
    ),
    "removestyle": "/admin removestyle NAME — stop sharing someone's style with this group",
    "ban": (
        "/admin ban USER_ID [REASON] — or reply /admin ban [REASON] to one of their messages "
        "(operator)"
    ),
    "unban": "/admin unban USER_ID — or as a reply to one of their messages (operator)",
    "queue": "/admin queue — queued and running jobs (this group's, for its managers)",
    "optouts": (
        "/admin optouts [by:CODE] — /optout registrations made in this group (all, for the "
        "operator), or one registrant's"
    ),
    "removeoptout": (
        "/admin removeoptout ID [ID ...] [REASON] — or by:CODE [REASON] for all of one "
        "registrant's; each removal is recorded in the consent ledger"
    ),
}
HELP = "Admin commands, for this group's admins and the bot's operator:\n" + "\n".join(
    USAGE.values()
)


class AdminUsageError(CommandSyntaxError):
    """The arguments do not fit; the message says how they should look."""


@dataclass(frozen=True)
class RepliedUser:
    """The sender of the message an ``/admin`` command replies to."""

    user_id: int
    is_bot: bool


def parse_admin(
    requester: Requester, args: str, replied: RepliedUser | None = None
) -> AdminCommand | None:
    """The admin command ``args`` stand for, None for ``/admin`` alone (show HELP).

    ``manages_server`` is left False: the caller sets it from Telegram for ManagerCommands.
    """
    words = args.split()
    if not words:
        return None
    verb, rest = words[0].lower(), words[1:]
    match verb:
        case "pause" | "resume":
            _no_more(verb, rest)
            return PauseTraining(requester) if verb == "pause" else ResumeTraining(requester)
        case "quota":
            return _quota(requester, rest)
        case "removestyle" | "remove-style" | "remove":
            if len(rest) != 1:
                raise AdminUsageError(_usage("removestyle", "Name one style."))
            return RemoveSharedStyle(requester, rest[0])
        case "ban":
            target, reason = _target("ban", rest, replied)
            return BanUser(requester, target, " ".join(reason))
        case "unban":
            target, extra = _target("unban", rest, replied)
            if extra:
                raise AdminUsageError(_usage("unban", "Give only whom to unban."))
            return UnbanUser(requester, target)
        case "queue":
            _no_more(verb, rest)
            return ShowQueue(requester)
        case "optouts":
            registrant, extra = _registrant(verb, rest)
            _no_more(verb, extra)
            return ListOptOuts(requester, registrant)
        case "removeoptout" | "remove-optout":
            return _remove_optouts(requester, rest)
        case _:
            raise AdminUsageError(f"Unknown admin command {printable(verb)!r}.\n\n{HELP}")


ManagerCommand = SetQuota | RemoveSharedStyle | ShowQueue | ListOptOuts | RemoveOptOuts


def needs_manager_check(command: object) -> TypeGuard[ManagerCommand]:
    """Whether the command's authority depends on managing the group it comes from."""
    return isinstance(command, ManagerCommand)


def _registrant(verb: str, rest: list[str]) -> tuple[str | None, list[str]]:
    """A leading ``by:CODE`` (the core checks the code), and the words after it."""
    if rest and rest[0].lower().startswith("by:"):
        code = rest[0][3:]
        if not code:
            raise AdminUsageError(_usage(verb, "Write the registrant code right after by:"))
        return code, rest[1:]
    return None, rest


def registration_ids(text: str) -> tuple[int, ...] | None:
    """The /optout registration ids ``text`` gives as listings show them (``#12 #15``,
    with commas or without), None when a word is not one: Discord's ids option and the
    typed ``/admin removeoptout`` read them alike."""
    words = text.replace(",", " ").split()
    # isdecimal, not isdigit: int() refuses digits such as '²' that isdigit accepts.
    if not all(word.lstrip("#").isdecimal() for word in words):
        return None
    return tuple(int(word.lstrip("#")) for word in words)


def _remove_optouts(requester: Requester, rest: list[str]) -> RemoveOptOuts:
    registrant, words = _registrant("removeoptout", rest)
    ids: list[int] = []
    if registrant is None:
        # The leading words that are ids; the rest is the reason.
        while words and (leading := registration_ids(words[0])):
            ids.extend(leading)
            words.pop(0)
        if not ids:
            problem = "Give the ids a listing shows (/admin optouts), or by:CODE."
            raise AdminUsageError(_usage("removeoptout", problem))
    return RemoveOptOuts(requester, tuple(ids), registrant, " ".join(words))


def _quota(requester: Requester, rest: list[str]) -> SetQuota:
    words = [word.lower() for word in rest]
    everywhere = bool(words) and words[-1] in QUOTA_EVERYWHERE
    if everywhere:
        words = words[:-1]
    if len(words) != 2:
        raise AdminUsageError(_usage("quota", "Give what to limit and how many."))
    kind, limit = words
    if kind not in QUOTA_KINDS:
        raise AdminUsageError(
            _usage("quota", f"A quota is for generate or train, not {printable(kind)!r}.")
        )
    if limit in QUOTA_LIFTED:
        per_day = None
    elif limit.isdecimal() and int(limit) >= 1:
        per_day = int(limit)
    else:
        problem = f"The limit is a whole number from 1, or none, not {printable(limit)!r}."
        raise AdminUsageError(_usage("quota", problem))
    return SetQuota(requester, kind, per_day, everywhere=everywhere)


def _target(verb: str, rest: list[str], replied: RepliedUser | None) -> tuple[str, list[str]]:
    """Whom a ban or unban is for (the replied-to sender, or a user id given first), and
    the words after it. A reply that also names someone else is refused, not guessed."""
    named = rest[0] if rest and (rest[0].isdecimal() or rest[0].startswith("@")) else None
    if replied is None:
        if not rest:
            raise AdminUsageError(_usage(verb, f"Say whom to {verb}."))
        return _user_id(rest[0], verb), rest[1:]
    target = _replied_target(replied, verb)
    if named is None:
        return target, rest
    if not named.isdecimal() or int(named) != int(target):
        raise AdminUsageError(
            _usage(
                verb,
                f"You replied to a message of user {target} but named {printable(named)}: "
                "use one or the other.",
            )
        )
    return target, rest[1:]


def _user_id(word: str, verb: str) -> str:
    """Telegram (the one typed platform with /admin) has positive numeric user ids."""
    if word.isdecimal() and int(word) > 0:
        return str(int(word))
    if word.startswith("@"):
        problem = (
            "Telegram does not let bots look up @usernames: give the numeric user id, or "
            f"reply /admin {verb} to one of their messages."
        )
    else:
        problem = f"{printable(word)!r} is not a Telegram user id (a number)."
    raise AdminUsageError(_usage(verb, problem))


def _replied_target(replied: RepliedUser, verb: str) -> str:
    if replied.is_bot:
        raise AdminUsageError(
            _usage(verb, "That message was sent by a bot (or posted as a group or channel).")
        )
    return str(replied.user_id)


def _no_more(verb: str, rest: list[str]) -> None:
    if rest:
        raise AdminUsageError(_usage(verb, f"/admin {verb} takes nothing after it."))


def _usage(verb: str, problem: str) -> str:
    return f"{problem} Nothing was changed.\nUse: {USAGE[verb]}"
