"""The consent terms and the licences a user can choose for their images."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

TERMS_VERSION = "2026-11-22"
TERMS_TEXT = (
    "By training a style you confirm that you made these images yourself, or hold "
    "the rights to use them to train an image model, and that anyone recognisable "
    "in them agreed. The style and its images stay yours: you can delete them at "
    "any time, which deletes the images, the trained weights and the images made "
    "with it."
)
TERMS_SHA256 = hashlib.sha256(TERMS_TEXT.encode()).hexdigest()


@dataclass(frozen=True)
class Licence:
    id: str  # SPDX id where one exists
    label: str
    # Other names people type; only where unambiguous (CC0 has one version, CC BY several).
    aliases: tuple[str, ...] = ()


LICENCES: tuple[Licence, ...] = (
    Licence("own-work", "My own work"),
    Licence("CC0-1.0", "CC0 (public domain)", aliases=("CC0", "public domain")),
    Licence("CC-BY-4.0", "CC BY 4.0"),
    Licence("CC-BY-SA-4.0", "CC BY-SA 4.0"),
    Licence("licensed", "Licensed to me with permission to train"),
)


def find_licence(text: str) -> Licence | None:
    """Match a licence by id, label or alias, ignoring case, spaces and dashes."""
    wanted = _squash(text)
    for licence in LICENCES:
        if wanted in {_squash(name) for name in (licence.id, licence.label, *licence.aliases)}:
            return licence
    return None


def _squash(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


class PeopleAnswer(StrEnum):
    """The answer to "do recognisable people appear in the images?", as every platform
    asks it: a one-letter code (kept in button data) and a label."""

    NONE = "n"
    AGREED = "y"
    NOT_AGREED = "x"

    @property
    def label(self) -> str:
        return _PEOPLE_LABELS[self]

    def consent_fields(self) -> tuple[bool, bool | None]:
        """``identifiable_people`` and ``people_agreed`` of ConfirmConsent."""
        if self is PeopleAnswer.NONE:
            return False, None
        return True, self is PeopleAnswer.AGREED


_PEOPLE_LABELS = {
    PeopleAnswer.NONE: "No recognisable people",
    PeopleAnswer.AGREED: "Recognisable people, and each of them agreed",
    PeopleAnswer.NOT_AGREED: "Recognisable people who did not agree",
}


def people_answer(code: str | None) -> PeopleAnswer | None:
    """The answer a code stands for; None when not (yet) given or not a code."""
    try:
        return PeopleAnswer(code) if code else None
    except ValueError:
        return None
