"""Commands the bot core understands: what an adapter builds from a platform event."""

from __future__ import annotations

from dataclasses import dataclass

from stylebot.bot.core.consent import PeopleAnswer
from stylebot.bot.core.model import Requester


@dataclass(frozen=True)
class IncomingFile:
    """A file as the user sent it: a name for display only, and the raw bytes; for a
    training image, the text it came with (its caption, stylebot.bot.core.captions)."""

    filename: str
    data: bytes
    caption: str | None = None


@dataclass(frozen=True)
class UploadImages:
    """Reference images for the next style. `posted_by` is the platform user id
    of whoever originally posted them, when they come from an existing message
    (Discord's "Add images to a style"): only one's own posts may be used."""

    requester: Requester
    files: tuple[IncomingFile, ...]
    posted_by: str | None = None


@dataclass(frozen=True)
class ConfirmConsent:
    """Consent for the waiting images, then (``train_as``) their training under that name,
    as the adapter ``train_variant`` (None: the operator's): one command, so no platform
    sequences the two itself.

    ``identifiable_people``: whether recognisable people appear in the images (None: not
    asked; the terms the user accepts cover it). If True, ``people_agreed`` must be True
    too. Both go into the consent ledger as given."""

    requester: Requester
    licence: str
    rights_confirmed: bool
    identifiable_people: bool | None = None
    people_agreed: bool | None = None
    train_as: str | None = None
    train_variant: str | None = None

    @classmethod
    def answered(
        cls,
        requester: Requester,
        licence: str,
        people: PeopleAnswer | None,
        train_as: str | None,
        train_variant: str | None = None,
    ) -> ConfirmConsent:
        """Rights confirmed (by a press or by typing), with the people answer if asked."""
        identifiable, agreed = people.consent_fields() if people is not None else (None, None)
        return cls(
            requester, licence, True, identifiable, agreed, train_as or None, train_variant or None
        )


@dataclass(frozen=True)
class ShowCaptions:
    """The captions of the waiting images, or (``style``) of an own style's images."""

    requester: Requester
    style: str | None = None


@dataclass(frozen=True)
class SetCaption:
    """Change the caption of waiting image ``number`` (1-based, as listed); ``-`` clears it."""

    requester: Requester
    number: int
    caption: str


@dataclass(frozen=True)
class SuggestCaptions:
    """``/captions auto``: a worker's captioner proposes a caption for each waiting image."""

    requester: Requester


@dataclass(frozen=True)
class AcceptCaptions:
    """``/captions accept [NUMBER]``: the proposed captions (or one) become the captions."""

    requester: Requester
    number: int | None = None


@dataclass(frozen=True)
class DiscardUploads:
    requester: Requester


@dataclass(frozen=True)
class Imagine:
    requester: Requester
    prompt: str
    style: str | None = None
    negative_prompt: str = ""
    seed: int | None = None
    steps: int | None = None
    width: int | None = None
    height: int | None = None
    count: int = 1
    # "square", "portrait" or "landscape" (ASPECTS): a shape instead of a size.
    aspect: str | None = None


@dataclass(frozen=True)
class Restyle:
    """A picture drawn again in a style (image-to-image), extended or partly repainted.
    ``strength``: how much of it is drawn again, 0-1 (None: the default).
    ``rights_confirmed``: the member says they made the picture or may use it, needed for
    any picture that is not a stylebot output they may see, and recorded in the consent
    ledger."""

    requester: Requester
    file: IncomingFile
    style: str | None
    prompt: str = ""
    strength: float | None = None
    rights_confirmed: bool = False
    # Extend (outpainting) instead: "zoom1.5", "zoom2", "square" or "portrait"
    # (stylebot.bot.core.extend.EXTENSIONS).
    extend: str | None = None
    # Repaint (inpainting) instead: the region drawn anew, as (left, top, width, height)
    # in percent of the picture.
    region: tuple[float, float, float, float] | None = None
    # Or a mask image: white is drawn anew, black kept (stylebot.bot.core.repaint_masks).
    mask: IncomingFile | None = None
    # Follow a sketch (ControlNet) instead: drawn from the prompt, guided by the picture's
    # "edges" (FOLLOW_KINDS) or "depth"; `strength` is then how closely (0-1).
    follow: str | None = None


@dataclass(frozen=True)
class ListStyles:
    requester: Requester


@dataclass(frozen=True)
class ShowStatus:
    requester: Requester


@dataclass(frozen=True)
class NamedStyle:
    """A command on one style, by the name the user gave."""

    requester: Requester
    name: str


@dataclass(frozen=True)
class TrainStyle(NamedStyle):
    # The adapter this style trains (`variant:` option; LORA_VARIANTS); None: the operator's.
    variant: str | None = None


class StyleInfo(NamedStyle):
    pass


@dataclass(frozen=True)
class ShareStyle(NamedStyle):
    """Share an own style with the server the command came from, or with everyone."""

    public: bool = False


class UnshareStyle(NamedStyle):
    pass


class DeleteStyle(NamedStyle):
    """Delete a style with its training images, weights and the images made with it."""


class ExportStyle(NamedStyle):
    pass


@dataclass(frozen=True)
class CancelJob:
    """Cancel one of the user's jobs: the given one, else their newest active one."""

    requester: Requester
    job_id: str | None = None


@dataclass(frozen=True)
class UsableStyles:
    """Style names the user may use here that start with `prefix` (autocomplete)."""

    requester: Requester
    prefix: str = ""
    limit: int = 25


@dataclass(frozen=True)
class OnOutput:
    """A command on one generated image (the buttons under a result)."""

    requester: Requester
    output_id: str


class RerollOutput(OnOutput):
    """The same request as an earlier image, with a new random seed."""


class VaryOutput(OnOutput):
    """Images close to an earlier one: same prompt, style and seed, started from it."""


class UpscaleOutput(OnOutput):
    """An earlier image at twice its size, drawn again in its style ("hires fix")."""


@dataclass(frozen=True)
class ExtendOutput(OnOutput):
    """An earlier image extended (outpainting): zoomed out ("zoom1.5", "zoom2") or to
    another shape ("square", "portrait"), the new area drawn in its style (EXTENSIONS)."""

    how: str = "zoom2"


class OutputInfo(OnOutput):
    pass


class DeleteOutput(OnOutput):
    """Delete one generated image (its maker only)."""


@dataclass(frozen=True)
class OptOut:
    """An artist registers their own images so that nobody else can train on copies."""

    requester: Requester
    files: tuple[IncomingFile, ...]


@dataclass(frozen=True)
class Verify:
    requester: Requester
    file: IncomingFile


@dataclass(frozen=True)
class EraseMyData:
    """Erase everything of the requester on this platform (right to erasure).

    Unconfirmed, the core only says what would go and how to confirm; adapters show a
    confirm button (or `/forgetme confirm`) that sends the same command with
    `confirmed=True`.
    """

    requester: Requester
    confirmed: bool = False


Command = (
    UploadImages
    | ConfirmConsent
    | ShowCaptions
    | SetCaption
    | SuggestCaptions
    | AcceptCaptions
    | DiscardUploads
    | TrainStyle
    | Imagine
    | Restyle
    | ListStyles
    | ShowStatus
    | StyleInfo
    | ShareStyle
    | UnshareStyle
    | DeleteStyle
    | ExportStyle
    | CancelJob
    | UsableStyles
    | RerollOutput
    | VaryOutput
    | UpscaleOutput
    | ExtendOutput
    | OutputInfo
    | DeleteOutput
    | Verify
    | OptOut
    | EraseMyData
)
