"""What each setting may be: a type and a range or choices, declared once per field.

Every `Settings` field carries a `Rule` in its metadata (see `setting`). The rule
turns a raw value (an environment string, or a TOML value) into the field's type
or raises `BadValue`; the loader turns that into one line naming the setting,
the value and what is allowed, e.g. `STYLEBOT_JOB_LEASE_S=0: must be a number
from 1 to 3600 (seconds)`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

RULE_KEY = "rule"
_ENV_PREFIX = "STYLEBOT_"  # as stylebot.config.ENV_PREFIX (which imports this module)
T = TypeVar("T")
# Control characters: a value with a newline or NUL is a pasting accident, never meant.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


class SettingsError(ValueError):
    """A setting has a value the program cannot use; the message says which and why."""


class BadValue(ValueError):
    """A raw value its rule does not allow (the rule's `allowed` says what is)."""


@dataclass(frozen=True)
class Rule:
    """Parses one setting's raw value; `allowed` completes "must be ..."."""

    allowed: str = ""
    # Shown as *** in errors: a token or password must not reach a log or a terminal.
    secret: bool = False

    def parse(self, raw: Any) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        return self.allowed


@dataclass(frozen=True)
class Whole(Rule):
    """A whole number in a range; `allowed` is its unit ("seconds"), if any."""

    low: int = 0
    high: int = 2**31 - 1
    multiple_of: int = 1
    # What the lowest value means, when it is special ("0: no limit").
    low_means: str = ""

    def parse(self, raw: Any) -> int:
        if isinstance(raw, (bool, float)):
            raise BadValue
        try:
            value = int(raw.strip()) if isinstance(raw, str) else int(raw)
        except (TypeError, ValueError):
            raise BadValue from None
        if not self.low <= value <= self.high or value % self.multiple_of:
            raise BadValue
        return value

    def describe(self) -> str:
        unit = f" of {self.allowed}" if self.allowed else ""
        text = f"a whole number{unit} from {self.low} to {self.high}"
        if self.multiple_of > 1:
            text += f", a multiple of {self.multiple_of}"
        if self.low_means:
            text += f" ({self.low}: {self.low_means})"
        return text


@dataclass(frozen=True)
class Number(Rule):
    """A finite number in a range; `allowed` is its unit, if any."""

    low: float = 0.0
    high: float = math.inf
    # True: the low end itself is not allowed (a learning rate of 0 learns nothing).
    above_low: bool = False

    def parse(self, raw: Any) -> float:
        if isinstance(raw, bool):
            raise BadValue
        try:
            value = float(raw.strip()) if isinstance(raw, str) else float(raw)
        except (TypeError, ValueError):
            raise BadValue from None
        too_low = value <= self.low if self.above_low else value < self.low
        if not math.isfinite(value) or too_low or value > self.high:
            raise BadValue
        return value

    def describe(self) -> str:
        low = f"above {self.low:g}" if self.above_low else f"from {self.low:g}"
        unit = f" of {self.allowed}" if self.allowed else ""
        return f"a number{unit} {low} {'and at most' if self.above_low else 'to'} {self.high:g}"


@dataclass(frozen=True)
class Flag(Rule):
    def parse(self, raw: Any) -> bool:
        if isinstance(raw, bool):
            return raw
        word = raw.strip().lower() if isinstance(raw, str) else None
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise BadValue

    def describe(self) -> str:
        return "true or false (or 1/0, yes/no, on/off)"


@dataclass(frozen=True)
class OneOf(Rule):
    choices: Sequence[str] = ()
    # True: "JSON" is "json" (for names people type in either case).
    ignore_case: bool = False

    def parse(self, raw: Any) -> str:
        if not isinstance(raw, str):
            raise BadValue
        word = raw.strip().lower() if self.ignore_case else raw.strip()
        if word not in self.choices:
            raise BadValue
        return word

    def describe(self) -> str:
        if len(self.choices) == 2:
            return " or ".join(self.choices)
        return f"one of {', '.join(self.choices)}"


@dataclass(frozen=True)
class Text(Rule):
    """Free text on one line (a model id, a token, a host name)."""

    def parse(self, raw: Any) -> str:
        if not isinstance(raw, str) or _CONTROL.search(raw):
            raise BadValue
        return raw

    def describe(self) -> str:
        return self.allowed or "text on one line"


@dataclass(frozen=True)
class Pattern(Rule):
    regex: str = ""

    def parse(self, raw: Any) -> str:
        if not isinstance(raw, str) or re.fullmatch(self.regex, raw.strip()) is None:
            raise BadValue
        return raw.strip()


@dataclass(frozen=True)
class PathValue(Rule):
    def parse(self, raw: Any) -> Path:
        if not isinstance(raw, (str, Path)) or not str(raw).strip() or _CONTROL.search(str(raw)):
            raise BadValue
        return Path(raw).expanduser()

    def describe(self) -> str:
        return self.allowed or "a file system path"


@dataclass(frozen=True)
class Url(Rule):
    schemes: Sequence[str] = ()
    # Whether an empty value is allowed (and means "none").
    optional: bool = False

    def parse(self, raw: Any) -> str:
        if not isinstance(raw, str) or _CONTROL.search(raw):
            raise BadValue
        if self.optional and not raw.strip():
            return ""
        try:
            parts = urlsplit(raw.strip())
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:
            raise BadValue from None
        if parts.scheme not in self.schemes:
            raise BadValue
        if not (parts.path if parts.scheme == "unix" else parts.hostname):
            raise BadValue
        return raw.strip()

    def describe(self) -> str:
        return (
            f"a URL starting {' or '.join(f'{s}://' for s in self.schemes)}"
            + (" or empty" if self.optional else "")
            + (f" ({self.allowed})" if self.allowed else "")
        )


@dataclass(frozen=True)
class Words(Rule):
    """A comma-separated list in the environment, a list of strings in TOML."""

    def parse(self, raw: Any) -> tuple[str, ...]:
        if isinstance(raw, str):
            items: list[Any] = raw.split(",")
        elif isinstance(raw, (list, tuple)):
            items = list(raw)
        else:
            raise BadValue
        if any(not isinstance(item, str) or _CONTROL.search(item) for item in items):
            raise BadValue
        return tuple(item.strip() for item in items if item.strip())

    def describe(self) -> str:
        return "words or phrases separated by commas, each on one line"


@dataclass(frozen=True)
class Networks(Words):
    """IP addresses or networks (CIDR), comma-separated; each kept in its canonical form."""

    def parse(self, raw: Any) -> tuple[str, ...]:
        try:
            return tuple(
                str(ipaddress.ip_network(item, strict=False)) for item in super().parse(raw)
            )
        except ValueError:
            raise BadValue from None

    def describe(self) -> str:
        return "IP addresses or networks (like 10.0.0.0/8), separated by commas"


def setting(default: T, rule: Rule, **options: Any) -> T:
    """A Settings field with its rule (and `default_factory` etc. in `options`)."""
    return field(default=default, metadata={RULE_KEY: rule}, **options)


def rule_of(metadata: Any) -> Rule | None:
    found = metadata.get(RULE_KEY)
    return found if isinstance(found, Rule) else None


def shown_url(text: str) -> str:
    """A URL without its password (`redis://user:***@host`); other text as it is."""
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        return text
    if password is None:
        return text
    user, _, at_host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user.partition(':')[0]}:***@{at_host}"))


def shown(source: str, value: Any, rule: Rule | None = None) -> str:
    """`STYLEBOT_X=value` (or `x = value in file.toml`), a secret's value hidden."""
    secret = rule is not None and rule.secret
    if " in " in source:  # from the TOML file: as TOML-ish, repr keeps it on one line
        name, _, where = source.partition(" in ")
        value = shown_url(value) if isinstance(value, str) else value
        return f"{name} = {'***' if secret else repr(value)} in {where}"
    text = "***" if secret else shown_url(str(value))
    if _CONTROL.search(text):  # shown escaped: the message stays on one line
        text = repr(text)[1:-1]
    return f"{source}={text}"


def parse_value(name: str, raw: Any, source: str, rule: Rule | None) -> Any:
    if rule is None:  # every field has one; tests/unit/test_setting_rules.py holds to it
        raise SettingsError(f"setting {name} has no rule in stylebot.config.Settings")
    try:
        return rule.parse(raw)
    except BadValue:
        raise SettingsError(f"{shown(source, raw, rule)}: must be {rule.describe()}") from None


# Settings that are given both or neither.
_PAIRED = (
    ("s3_access_key_id", "s3_secret_access_key"),
    ("c2pa_cert_chain", "c2pa_private_key"),
    ("redis_tls_cert_file", "redis_tls_key_file"),
    # /sketch's depth: the ControlNet and the model that makes its depth maps.
    ("controlnet_depth", "depth_estimator"),
)
# Used by a rediss:// REDIS_URL only; set with another, they would silently do nothing.
_REDIS_TLS_FILES = ("redis_tls_ca_file", "redis_tls_cert_file", "redis_tls_key_file")

# (lower, upper): settings that must not cross; checked in this order, so that a
# too-large minimum is reported against the maximum it passes.
_ORDERED = (
    ("min_size", "max_size"),
    ("min_size", "default_size"),
    ("default_size", "max_size"),
    ("default_steps", "max_steps"),
    ("min_train_images", "max_train_images"),
)


def check_between_fields(
    settings: Any, given: Mapping[str, Any], sources: Mapping[str, str]
) -> None:
    """The rules between Settings fields; the message blames the one that was set."""
    for lower, upper in _ORDERED:
        low, high = getattr(settings, lower), getattr(settings, upper)
        if low <= high:
            continue
        if lower in given:
            message = f"must be at most {_name(upper, sources)} ({high})"
            raise SettingsError(f"{shown(sources[lower], given[lower])}: {message}")
        message = f"must be at least {_name(lower, sources)} ({low})"
        raise SettingsError(f"{shown(sources[upper], given[upper])}: {message}")
    fields = {each.name: each for each in dataclasses.fields(settings)}
    for first, second in _PAIRED:
        if (getattr(settings, first) is None) != (getattr(settings, second) is None):
            one, other = (first, second) if getattr(settings, second) is None else (second, first)
            raise SettingsError(
                f"{shown(sources[one], given[one], rule_of(fields[one].metadata))}: must be "
                "set together with "
                f"{_name(other, sources)}"
            )
    scheme = urlsplit(settings.redis_url or "").scheme
    for tls_file in _REDIS_TLS_FILES:
        if getattr(settings, tls_file) is not None and scheme != "rediss":
            raise SettingsError(
                f"{shown(sources[tls_file], given[tls_file])}: is for a TLS Redis, but "
                f"{_name('redis_url', sources)} is not a rediss:// URL"
            )


def _name(field_name: str, sources: Mapping[str, str]) -> str:
    """How the operator refers to a setting: as they gave it, else its variable."""
    source = sources.get(field_name, _ENV_PREFIX + field_name.upper())
    return source.partition(" in ")[0]
