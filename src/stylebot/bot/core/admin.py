"""Admin commands: the operator and server managers keep the bot fit for their community.

Who may do what:

- The **operator** runs the bot: a list of `platform:user_id` in the settings
  (`STYLEBOT_OPERATORS`). They pause and resume training on every worker, set
  quotas everywhere, ban and unban users from the whole bot, and see the
  whole queue.
- A **server manager** runs one Discord server or Telegram group. The adapter
  knows who that is (Discord's Manage Server permission, Telegram's chat
  administrators) and says so in the command (`manages_server`); the core
  trusts it, as it trusts the requester's id. Managers set quotas for their
  server, remove styles shared with it, and see its members' jobs.

Everyone else gets a refusal that changes nothing. Each admin action is logged
through the `AdminStore` with who did it, so a community can see what its
managers did.

Training is paused with a flag in Redis (the `TrainingSwitch` port), because
workers, which never read the database, are the ones that honour it: while it
is set they leave training jobs in the queue and keep generating.
"""

from __future__ import annotations

from enum import StrEnum

from stylebot.bot.core.admin_commands import (
    BanUser,
    PauseTraining,
    RemoveSharedStyle,
    ResumeTraining,
    SetQuota,
    ShowQueue,
    UnbanUser,
)
from stylebot.bot.core.admin_ports import (
    GLOBAL_SCOPE,
    AdminPorts,
)
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.jobs import cancel_job, waiting_positions
from stylebot.bot.core.model import Job, JobStatus, Requester, Visibility
from stylebot.bot.core.names import InvalidStyleName, normalise_style_name, printable
from stylebot.bot.core.replies import ErrorReply, Reply, TextReply

# The jobs a daily quota counts (terminal_status.JOB_KINDS, the queues always shown, is
# another list that happens to hold the same two today).
QUOTA_KINDS = ("train", "generate")
QUOTA_UNITS = {"generate": "images", "train": "trainings"}


# -- who may do what ---------------------------------------------------------------------------


class Authority(StrEnum):
    OPERATOR = "operator"
    SERVER_MANAGER = "server manager"
    NONE = "none"


def authority_of(ports: AdminPorts, requester: Requester, manages_server: bool) -> Authority:
    if requester.user_key in ports.operators:
        return Authority.OPERATOR
    # Managing "the server" of a direct message means nothing: no scope, no authority.
    if manages_server and requester.scope is not None:
        return Authority.SERVER_MANAGER
    return Authority.NONE


OPERATOR_ONLY = ErrorReply("Only the bot's operator can do that.")
MANAGERS_ONLY = ErrorReply(
    "Only a manager of this server or group (or the bot's operator) can do that."
)


async def _log(deps: Deps, requester: Requester, action: str, detail: str) -> None:
    await deps.admin.store.log_action(requester.user_key, action, detail, deps.clock.now())


# -- handlers ----------------------------------------------------------------------------------


async def handle_pause_training(deps: Deps, command: PauseTraining) -> Reply:
    ports = deps.admin
    if authority_of(ports, command.requester, False) is not Authority.OPERATOR:
        return OPERATOR_ONLY
    already = await ports.training.paused_by()
    if already is not None:
        return TextReply(f"Training is already paused (by {already}).")
    await ports.training.pause(command.requester.user_key)
    await _log(deps, command.requester, "pause-training", "")
    return TextReply(
        "Training is paused: workers finish the training they are running, then take no "
        "new one until you resume. Generation goes on."
    )


async def handle_resume_training(deps: Deps, command: ResumeTraining) -> Reply:
    ports = deps.admin
    if authority_of(ports, command.requester, False) is not Authority.OPERATOR:
        return OPERATOR_ONLY
    if await ports.training.paused_by() is None:
        return TextReply("Training is not paused.")
    await ports.training.resume()
    await _log(deps, command.requester, "resume-training", "")
    return TextReply("Training resumed: queued trainings start as workers free up.")


async def handle_set_quota(deps: Deps, command: SetQuota) -> Reply:
    ports = deps.admin
    authority = authority_of(ports, command.requester, command.manages_server)
    if command.kind not in QUOTA_KINDS:
        return ErrorReply(
            f"A quota is for {' or '.join(QUOTA_KINDS)}, not {printable(command.kind)!r}."
        )
    if command.per_day is not None and command.per_day < 1:
        return ErrorReply("A quota is a number per member per day: 1 or more (or none).")
    if command.everywhere:
        if authority is not Authority.OPERATOR:
            return OPERATOR_ONLY
        scope, where = GLOBAL_SCOPE, "everywhere"
    else:
        if authority is Authority.NONE:
            return MANAGERS_ONLY
        if command.requester.scope is None:
            return ErrorReply("Set a server's quota from inside that server or group.")
        scope, where = command.requester.scope, "in this server"
    await ports.store.set_quota(
        scope, command.kind, command.per_day, command.requester.user_key, deps.clock.now()
    )
    unit = QUOTA_UNITS[command.kind]
    amount = "no limit" if command.per_day is None else f"{command.per_day} {unit} per member a day"
    await _log(deps, command.requester, "set-quota", f"{scope} {command.kind} {amount}")
    return TextReply(f"Quota for {command.kind} {where}: {amount}.")


async def handle_remove_shared_style(deps: Deps, command: RemoveSharedStyle) -> Reply:
    ports = deps.admin
    authority = authority_of(ports, command.requester, command.manages_server)
    if authority is Authority.NONE:
        return MANAGERS_ONLY
    scope = command.requester.scope
    try:
        name = normalise_style_name(command.name)
    except InvalidStyleName:
        return ErrorReply(f"There is no style named {printable(command.name)!r}.")
    named = await deps.uow.styles.styles_named(name)
    shared_here = [
        s for s in named if s.visibility is Visibility.SERVER and s.shared_scope == scope
    ]
    public = [s for s in named if s.visibility is Visibility.PUBLIC]
    if not shared_here and public and authority is Authority.OPERATOR:
        shared_here = public  # only the operator can take a public style back
    if not shared_here:
        if public:
            return ErrorReply(
                f"Style {name} is public, not shared with this server; only the bot's "
                "operator can make it private."
            )
        return ErrorReply(f"No style named {name} is shared with this server.")
    for style in shared_here:
        await deps.uow.styles.set_style_visibility(style.id, Visibility.PRIVATE)
        await _log(deps, command.requester, "remove-shared-style", f"style {style.id} from {scope}")
    return TextReply(
        f"Style {name} is no longer shared here. It stays its owner's, private to them."
    )


async def handle_ban_user(deps: Deps, command: BanUser) -> Reply:
    ports = deps.admin
    if authority_of(ports, command.requester, False) is not Authority.OPERATOR:
        return OPERATOR_ONLY
    platform = command.requester.platform
    target = command.platform_user_id.strip()
    if not target:
        return ErrorReply("Say whom to ban: their user id on this platform.")
    if f"{platform}:{target}" in ports.operators:
        return ErrorReply("An operator cannot be banned; remove them from STYLEBOT_OPERATORS.")
    await ports.store.ban(
        platform, target, command.reason, command.requester.user_key, deps.clock.now()
    )
    # Found by where the jobs came from, not by user record: looking the user up
    # by id would create one (or rename them) as a side effect.
    cancelled = 0
    for job in await deps.uow.jobs.active_jobs():
        if (job.origin.platform, job.origin.user_id) == (platform, target):
            await cancel_job(deps, job)
            cancelled += 1
    await _log(deps, command.requester, "ban", f"{platform}:{target} {command.reason}")
    jobs = f"; {cancelled} of their jobs cancelled" if cancelled else ""
    return TextReply(f"Banned {target} from the bot{jobs}.")


async def handle_unban_user(deps: Deps, command: UnbanUser) -> Reply:
    ports = deps.admin
    if authority_of(ports, command.requester, False) is not Authority.OPERATOR:
        return OPERATOR_ONLY
    platform = command.requester.platform
    target = command.platform_user_id.strip()
    if not await ports.store.unban(platform, target):
        return ErrorReply(f"{printable(target)} is not banned.")
    await _log(deps, command.requester, "unban", f"{platform}:{target}")
    return TextReply(f"{target} may use the bot again.")


def _describe(job: Job, place: str, owner: str) -> str:
    progress = f" {job.step}/{job.total}" if job.total else ""
    return f"{place:>4} {job.kind} by {owner}: {job.status}{progress} ({job.id})"


async def handle_show_queue(deps: Deps, command: ShowQueue) -> Reply:
    ports = deps.admin
    authority = authority_of(ports, command.requester, command.manages_server)
    if authority is Authority.NONE:
        return MANAGERS_ONLY
    active = await deps.uow.jobs.active_jobs()
    # The positions /status gives, in each lane; they count every job ahead,
    # also those a manager does not see.
    positions = await waiting_positions(deps, active)
    listed = [
        job
        for job in active
        if authority is Authority.OPERATOR or job.origin.scope == command.requester.scope
    ]
    paused_by = await ports.training.paused_by()
    header = f"{len(active)} job(s) queued or running"
    if authority is Authority.SERVER_MANAGER:
        header += f", {len(listed)} from this server"
    lines = [header + "."]
    if paused_by is not None:
        lines.append(f"Training is paused (by {paused_by}); generation goes on.")
    names: dict[int, str] = {}

    async def described(job: Job, place: str) -> str:
        if job.user_id not in names:
            user = await deps.uow.users.get_user(job.user_id)
            names[job.user_id] = user.display_name if user else f"user {job.user_id}"
        return _describe(job, place, names[job.user_id])

    running = [job for job in listed if job.status is not JobStatus.QUEUED]
    if running:
        lines.append("Running:")
        lines.extend([await described(job, "-") for job in running])
    for kind, title in (("generate", "Generation queue:"), ("train", "Training queue:")):
        in_lane = [job for job in listed if job.kind == kind and job.id in positions]
        waiting = sorted(((positions[job.id], job) for job in in_lane), key=lambda pair: pair[0])
        if waiting:
            lines.append(title)
            lines.extend([await described(job, f"{place}.") for place, job in waiting])
    lines.extend(await _worker_lines(ports, authority))
    # Who queued what (for the operator: in every server) is for the asker, not a group.
    return TextReply("\n".join(lines), private=True)


async def _worker_lines(ports: AdminPorts, authority: Authority) -> list[str]:
    """The live workers: each with its device and model for the operator, how many
    for a server manager (the hosts are the operator's business)."""
    workers = await ports.workers.live_workers()
    draining = sum(worker.draining for worker in workers)
    summary = f"{len(workers)} worker(s) online" + (f", {draining} draining" if draining else "")
    if authority is not Authority.OPERATOR or not workers:
        return [summary + "."]
    lines = [summary + ":"]
    for worker in workers:
        device = worker.device
        if worker.gpu_memory_bytes:
            device += f" {worker.gpu_memory_bytes / 1024**3:.0f} GiB"
        state = "draining" if worker.draining else "serving"
        jobs = f", running {', '.join(worker.jobs)}" if worker.jobs else ""
        lines.append(
            f"- {printable(worker.worker_id)}: {printable(device)}, {printable(worker.family)}, "
            f"{printable(worker.base_model)}, stylebot {printable(worker.version)}, {state}{jobs}"
        )
    return lines


# -- gates the other handlers call -------------------------------------------------------------


async def banned_refusal(deps: Deps, requester: Requester) -> ErrorReply | None:
    """The reply for a banned user's command, or None to go ahead."""
    ports = deps.admin
    if requester.user_key in ports.operators:
        return None
    if await ports.store.ban_of(requester.platform, requester.user_id) is None:
        return None
    return ErrorReply("You cannot use this bot here. Ask the server's managers why.")


async def admin_quota_limit(deps: Deps, requester: Requester, kind: str) -> int | None:
    """The strictest per-member daily quota admins set for `kind` where the requester is
    (the global one, and their server's), or None when none applies.

    Units are those of the operator's quotas in Policy (stylebot.bot.core.quotas):
    images for "generate", trainings for "train". The quota check takes the lower of
    this and the Policy's per-user limit; operators have no admin quota.
    """
    ports = deps.admin
    if requester.user_key in ports.operators:
        return None
    scopes = [GLOBAL_SCOPE] + ([requester.scope] if requester.scope else [])
    quotas = await ports.store.quotas(scopes, kind)
    return min((quota.per_day for quota in quotas), default=None)
