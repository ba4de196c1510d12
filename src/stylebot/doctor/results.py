"""What a doctor check found: OK, WARN or FAIL, one line on it, and one on the fix."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class CheckResult:
    name: str
    level: Level
    found: str
    fix: str | None = None


def ok(name: str, found: str) -> CheckResult:
    return CheckResult(name, Level.OK, found)


def warn(name: str, found: str, fix: str) -> CheckResult:
    return CheckResult(name, Level.WARN, found, fix)


def fail(name: str, found: str, fix: str) -> CheckResult:
    return CheckResult(name, Level.FAIL, found, fix)
