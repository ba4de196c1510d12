"""Admins review /optout registrations and remove the abusive ones.

Anyone can register a picture with /optout, including someone else's, and so keep its
real artist from training on their own work; registrations outlive an erasure. So the
operator (everywhere) and a server's managers (for registrations made in their server)
can list them, newest first with who registered each as a one-way code, and remove them
by id or all of one registrant's at once. Each removal is a consent ledger entry, in the
same transaction as the removal, and an admin log line.
"""

from __future__ import annotations

import re
from collections import Counter

from stylebot.bot.core.admin import MANAGERS_ONLY, Authority, _log, authority_of
from stylebot.bot.core.admin_commands import ListOptOuts, RemoveOptOuts
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.ledger import LedgerKind, optout_removal_payload
from stylebot.bot.core.mentions import CommandName, mention
from stylebot.bot.core.model import Requester
from stylebot.bot.core.names import printable
from stylebot.bot.core.optout import OptedOutImage
from stylebot.bot.core.replies import ErrorReply, Reply, TextReply

_OPTOUT = mention(CommandName.OPTOUT)


LISTED = 50  # registrations a listing shows
SHOWN_CODE = 12  # hex digits of a registrant code shown; 8 or more select one
_MIN_CODE = 8
_CODE = re.compile(r"[0-9a-f]+")


def _scope_of(authority: Authority, requester: Requester) -> str | None:
    """Whose registrations an admin sees: all (None) for the operator, else this server's."""
    return None if authority is Authority.OPERATOR else requester.scope


def _line(image: OptedOutImage, operator: bool) -> str:
    when = image.created_at.strftime("%Y-%m-%d %H:%M")
    where = f" in {image.scope or 'a direct message'}" if operator else ""
    return f"#{image.id} {when} by {image.registrant[:SHOWN_CODE] or 'unknown'}{where}"


def _authority_and_registrant(
    deps: Deps, command: ListOptOuts | RemoveOptOuts
) -> tuple[Authority, str | None] | ErrorReply:
    """The requester's authority over registrations and the registrant code given, or why not."""
    authority = authority_of(deps.admin, command.requester, command.manages_server)
    if authority is Authority.NONE:
        return MANAGERS_ONLY
    if command.registrant is None:
        return authority, None
    code = command.registrant.strip().lower()
    if len(code) < _MIN_CODE or not _CODE.fullmatch(code):
        return ErrorReply(
            f"{printable(command.registrant)!r} is not a registrant code: give at least "
            f"{_MIN_CODE} of the hex digits a listing shows."
        )
    return authority, code


async def handle_list_optouts(deps: Deps, command: ListOptOuts) -> Reply:
    checked = _authority_and_registrant(deps, command)
    if isinstance(checked, ErrorReply):
        return checked
    authority, registrant = checked
    within = _scope_of(authority, command.requester)
    listed = await deps.uow.optouts.listing(within, registrant, LISTED)
    where = "" if within is None else " made in this server"
    if not listed:
        return TextReply(f"No {_OPTOUT} registrations{where}.")
    operator = authority is Authority.OPERATOR
    lines = [f"{_OPTOUT} registrations{where}, newest first ({len(listed)} shown):"]
    lines += [_line(image, operator) for image in listed]
    busiest, count = Counter(i.registrant for i in listed).most_common(1)[0]
    if count > 1 and busiest:
        lines.append(f"Most of these by one registrant: {busiest[:SHOWN_CODE]} ({count}).")
    lines.append(
        "Remove with the ids, or all of one registrant's with their code; the artist of a "
        "removed image can register it again."
    )
    return TextReply("\n".join(lines))


async def handle_remove_optouts(deps: Deps, command: RemoveOptOuts) -> Reply:
    checked = _authority_and_registrant(deps, command)
    if isinstance(checked, ErrorReply):
        return checked
    authority, registrant = checked
    if not command.ids and registrant is None:
        return ErrorReply("Say which registrations to remove: their ids, or a registrant code.")
    within = _scope_of(authority, command.requester)
    now = deps.clock.now()
    # The removals and their ledger entries land together or not at all.
    async with deps.uow:
        removed = await deps.uow.optouts.remove(within, command.ids, registrant)
        for image in removed:
            payload = optout_removal_payload(
                optout_id=image.id,
                sha256=image.sha256,
                phash=image.phash,
                registrant=image.registrant,
                registered_at=image.created_at,
                scope=image.scope,
                removed_by=command.requester.user_key,
                authority=str(authority),
                reason=command.reason,
            )
            await deps.uow.ledger.append(LedgerKind.OPTOUT_REMOVAL, payload, now)
    if not removed:
        where = "" if within is None else " made in this server"
        return ErrorReply(f"No such {_OPTOUT} registrations{where}. Nothing was removed.")
    ids = ", ".join(f"#{image.id}" for image in removed)
    await _log(deps, command.requester, "remove-optout", f"{ids} {command.reason}".strip())
    return TextReply(
        f"Removed {len(removed)} {_OPTOUT} registration(s): {ids}. Copies of those images may "
        "be trained on again; the consent ledger records each removal."
    )
