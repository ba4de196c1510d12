"""Restyle: a picture drawn again in a style (image-to-image); extend, repaint and sketch
(a prompt drawn along the picture's edges, ControlNet) go the same way.

The picture is an upload like any other: checked, turned upright and stripped of its
metadata (`normalize_upload`), refused when its own metadata forbids AI use or it matches
an /optout registration. A stylebot output the member may see in full (traced by
`verify_image` as *made by*) is used as stored, its manifest and all, so the new image's
Content Credentials name it; any other picture needs the member's word that they may use
it, which the ledger records with the job (`picture_sources`). Then it goes through the
same admission as /imagine: permissions, quotas and queue.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import replace

from stylebot.bot.core.commands import Restyle
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.extend import EXTEND_STRENGTH, EXTENSIONS, extend_geometry
from stylebot.bot.core.generation import GenerationSpec, admit_and_queue
from stylebot.bot.core.image_work import admit_image_work, run_image_work
from stylebot.bot.core.images import ImageRejected, NormalizedImage, normalize_upload
from stylebot.bot.core.ledger import ImageEvidence
from stylebot.bot.core.mentions import CommandName, mention
from stylebot.bot.core.names import printable
from stylebot.bot.core.perceptual import perceptual_hash_of_png
from stylebot.bot.core.picture_sources import PICTURE_RIGHTS_TEXT, PictureSource
from stylebot.bot.core.policy import Policy
from stylebot.bot.core.repaint_masks import repaint_mask
from stylebot.bot.core.replies import ErrorReply, Reply, VerifyReport, VerifyVerdict
from stylebot.bot.core.styles import resolve_style
from stylebot.bot.core.training_rights import training_reservation
from stylebot.bot.core.uploads import copies_opted_out
from stylebot.bot.core.verification import verify_image

# AUTOMATIC1111's img2img default: the picture's layout stays, its look changes.
DEFAULT_STRENGTH = 0.6
# A sketch's ControlNet weight when not given: the edges followed as it was trained to.
SKETCH_STRENGTH = 1.0


def region_refusal(region: tuple[float, float, float, float]) -> ErrorReply | None:
    left, top, width, height = region
    if min(region) < 0 or width <= 0 or height <= 0 or left + width > 100 or top + height > 100:
        return ErrorReply(
            "region is left,top,width,height in percent of the picture, inside it: "
            "e.g. region:25,25,50,50 for the middle."
        )
    return None


def region_box(
    region: tuple[float, float, float, float], width: int, height: int
) -> tuple[int, int, int, int]:
    """A region in percent as a box in pixels of a `width` x `height` picture (at least
    one pixel each way)."""
    left, top = round(region[0] * width / 100), round(region[1] * height / 100)
    right = max(left + 1, round((region[0] + region[2]) * width / 100))
    bottom = max(top + 1, round((region[1] + region[3]) * height / 100))
    return left, top, min(right, width) - left, min(bottom, height) - top


def restyle_size(width: int, height: int, policy: Policy) -> tuple[int, int]:
    """The picture's shape at the default size: its long side `default_size` (its short
    side stretched to `min_size` if it falls short, the long one then at most
    `max_size`), both sides multiples of 8 within the allowed sizes."""
    scale = policy.default_size / max(width, height)
    scale = max(scale, policy.min_size / min(width, height))
    scale = min(scale, policy.max_size / max(width, height))

    def side(length: int) -> int:
        fitted = round(length * scale / 8) * 8
        return max(policy.min_size, min(policy.max_size // 8 * 8, fitted))

    return side(width), side(height)


def sketch_refusal(policy: Policy, command: Restyle) -> ErrorReply | None:
    """Why /sketch can't follow what it was asked to here, or None when it can."""
    if command.follow not in policy.sketch_follows:
        if not policy.sketch_follows:
            return ErrorReply(
                "Following a sketch is not set up on this bot: its operator has configured "
                "no ControlNet. Nothing was queued."
            )
        kinds = " or ".join(f"follow:{kind}" for kind in policy.sketch_follows)
        return ErrorReply(f"This bot can't follow the {command.follow} of a picture; use {kinds}.")
    if command.extend is not None or command.region is not None or command.mask is not None:
        return ErrorReply("A sketch is followed as it is: no extend, region or mask with it.")
    if not command.prompt.strip():
        return ErrorReply(
            "Say what to draw along the sketch, e.g. "
            f"{mention(CommandName.SKETCH, 'a castle on a hill', style='NAME')}."
        )
    return None


async def restyle(deps: Deps, command: Restyle) -> Reply:
    p = deps.policy
    if not command.style:
        name = CommandName.RESTYLE if command.follow is None else CommandName.SKETCH
        return ErrorReply(
            f"Name the style to draw the picture in, e.g. {mention(name, style='NAME')}."
        )
    if command.follow is not None and (refused := sketch_refusal(deps.policy, command)):
        return refused
    default = DEFAULT_STRENGTH if command.follow is None else SKETCH_STRENGTH
    strength = default if command.strength is None else command.strength
    if not 0 < strength <= 1:
        return ErrorReply("strength is a number above 0 and at most 1 (e.g. 0.6).")
    prompt = command.prompt.strip()
    if len(prompt) > p.max_prompt_chars:
        return ErrorReply(f"Prompts are limited to {p.max_prompt_chars} characters.")
    files = (command.file,) if command.mask is None else (command.file, command.mask)
    refused = await admit_image_work(deps, command.requester, files)
    if refused is not None:
        return refused
    user = await deps.user(command.requester)
    found = await resolve_style(deps, user, command.requester, command.style)
    if isinstance(found, ErrorReply):
        return found
    repaints = command.region is not None or command.mask is not None
    if command.extend is not None and repaints:
        return ErrorReply("Extend or repaint a picture, not both at once.")
    if command.region is not None and command.mask is not None:
        return ErrorReply("Give the part to repaint as a region or as a mask, not both.")
    if command.region is not None and (refused := region_refusal(command.region)) is not None:
        return refused
    found_source = await _picture_source(deps, command, strength)
    if isinstance(found_source, ErrorReply):
        return found_source
    source, picture_size = found_source
    width, height = restyle_size(*picture_size, p)
    described, action = f"your picture (strength {strength:g})", None
    if command.follow is not None:
        source = replace(source, follow=command.follow)
        described = f"{prompt}, following the {command.follow} of your picture"
        action = "Sketching"
    elif command.extend is not None:
        geometry = extend_geometry(width, height, command.extend, p)
        if isinstance(geometry, str):
            return ErrorReply(geometry)
        width, height, box = geometry
        source = replace(source, strength=EXTEND_STRENGTH, keep_box=box)
        described = f"your picture, {EXTENSIONS[command.extend]} ({width}x{height})"
        action = "Extending"
    elif command.region is not None:
        repaint = 1.0 if command.strength is None else strength
        source = replace(
            source, strength=repaint, repaint_box=region_box(command.region, width, height)
        )
        described, action = "a region of your picture", "Repainting"
    elif command.mask is not None:
        mask = await repaint_mask(deps, command.mask, width, height)
        if isinstance(mask, ErrorReply):
            return mask
        repaint = 1.0 if command.strength is None else strength
        source = replace(
            source,
            strength=repaint,
            mask_key=hashlib.sha256(mask).hexdigest(),
            mask_upload=mask,
        )
        described, action = "the masked part of your picture", "Repainting"
    spec = GenerationSpec(
        prompt=prompt,
        negative_prompt="",
        seed=secrets.randbelow(2**31),
        steps=p.default_steps,
        width=width,
        height=height,
        count=1,
        described_as=described,
        source=source,
        action=action,
    )
    return await admit_and_queue(deps, command.requester, user, found, spec)


async def _picture_source(
    deps: Deps, command: Restyle, strength: float
) -> tuple[PictureSource, tuple[int, int]] | ErrorReply:
    """The picture as the job will read it and its size, or why it may not be used."""
    file, requester = command.file, command.requester
    try:
        image = await run_image_work(
            deps, normalize_upload, file.filename, file.data, deps.policy.images
        )
    except ImageRejected as exc:
        return ErrorReply(f"{printable(file.filename)}: {exc.reason} Nothing was queued.")
    # The raw bytes, before normalising dropped the metadata that may reserve them.
    reservation = training_reservation(file.data)
    if reservation is not None:
        return ErrorReply(f"“{image.display_name}” can't be used here: {reservation}.")
    phash = await run_image_work(deps, perceptual_hash_of_png, image.data)
    if await copies_opted_out(deps, image, phash, requester) is not None:
        return ErrorReply(
            f"“{image.display_name}” matches an image its artist registered with "
            f"{mention(CommandName.OPTOUT)}, so it can't be used here."
        )
    async with deps.image_work:
        report = await verify_image(
            deps.uow,
            deps.watermark,
            file.filename,
            file.data,
            deps.policy.images,
            blobs=deps.blobs,
            viewer=requester,
            max_side=deps.policy.max_size,
        )
    made = report.output if isinstance(report, VerifyReport) else None
    if (
        isinstance(report, VerifyReport)
        and report.verdict is VerifyVerdict.MADE
        and made is not None
        and made.blob_key is not None
    ):
        if report.shown_percent in (None, 100):
            # The whole output, at any size: its stored blob is the better copy.
            source = PictureSource(made.blob_key, strength, output_id=made.id)
            return source, (made.width, made.height)
        # A crop of it is what the member asked to draw again: its own pixels, traced to
        # the output (nothing to confirm, as for the whole).
        source = PictureSource(image.sha256, strength, output_id=made.id, upload=image.data)
        return source, (image.width, image.height)
    if not command.rights_confirmed:
        return ErrorReply(_confirm_text(image, command))
    evidence = ImageEvidence(image.sha256, phash.hex)
    source = PictureSource(image.sha256, strength, upload=image.data, evidence=evidence)
    return source, (image.width, image.height)


def _confirm_text(image: NormalizedImage, command: Restyle) -> str:
    name = CommandName.RESTYLE
    if command.follow is not None:
        name = CommandName.SKETCH
    elif command.extend is not None:
        name = CommandName.EXTEND
    elif command.region is not None or command.mask is not None:
        name = CommandName.REPAINT
    return (
        f"“{image.display_name}” is not a stylebot image of yours. To use it, confirm: "
        f"“{PICTURE_RIGHTS_TEXT}” Send it again with "
        f"{mention(name, style='NAME', confirm='yes')}; your confirmation is "
        "recorded. Nothing was queued."
    )
