"""The admin commands as data: what the operator or a server manager asked for.
Who may do each and what it does: `stylebot.bot.core.admin`."""

from __future__ import annotations

from dataclasses import dataclass

from stylebot.bot.core.model import Requester


@dataclass(frozen=True)
class PauseTraining:
    """Workers stop taking training jobs (queued ones wait); generation goes on."""

    requester: Requester


@dataclass(frozen=True)
class ResumeTraining:
    requester: Requester


@dataclass(frozen=True)
class SetQuota:
    """At most `per_day` images ("generate") or trainings ("train") per member per day;
    None lifts the quota.

    For the server the command came from, or with `everywhere` for every user
    (operator only). Quotas only tighten: the lowest of the server's, the global
    one and the operator's settings (Policy) holds.
    """

    requester: Requester
    kind: str
    per_day: int | None
    manages_server: bool = False
    everywhere: bool = False


@dataclass(frozen=True)
class RemoveSharedStyle:
    """Stop sharing someone's style with this server; it stays its owner's, private."""

    requester: Requester
    name: str
    manages_server: bool = False


@dataclass(frozen=True)
class BanUser:
    """Ban a user of the requester's platform from the whole bot; their jobs are cancelled."""

    requester: Requester
    platform_user_id: str
    reason: str = ""


@dataclass(frozen=True)
class UnbanUser:
    requester: Requester
    platform_user_id: str


@dataclass(frozen=True)
class ShowQueue:
    """Queued and running jobs: all of them for the operator, this server's for a manager."""

    requester: Requester
    manages_server: bool = False


@dataclass(frozen=True)
class ListOptOuts:
    """/optout registrations to review (stylebot.bot.core.optout_review): those made in
    this server for a manager, all for the operator; one registrant's (code or its
    start) when given."""

    requester: Requester
    registrant: str | None = None
    manages_server: bool = False


@dataclass(frozen=True)
class RemoveOptOuts:
    """Remove /optout registrations by id, or all of one registrant's; each removal goes
    into the consent ledger."""

    requester: Requester
    ids: tuple[int, ...] = ()
    registrant: str | None = None
    reason: str = ""
    manages_server: bool = False


#: Every admin command; `commands.Command` lists the members' commands.
AdminCommand = (
    PauseTraining
    | ResumeTraining
    | SetQuota
    | RemoveSharedStyle
    | BanUser
    | UnbanUser
    | ShowQueue
    | ListOptOuts
    | RemoveOptOuts
)
