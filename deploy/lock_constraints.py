"""Print requirements.lock as pip constraints for an image, leaving out what the base
image already has installed.

The images install from the same lock as `make test`, so an image built next month
gets the versions the suite passed with, not whatever is newest then. A package the
base already carries stays as it is: the CUDA base image's torch comes with its own
pins (sympy, networkx, the nvidia-* libraries), which the lock, resolved against the
CPU torch, must not fight.

    python lock_constraints.py requirements.lock > constraints.txt
    pip install -c constraints.txt .
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from collections.abc import Iterable
from pathlib import Path


def canonical(name: str) -> str:
    """PEP 503's normal form: 'Typing_Extensions' and 'typing-extensions' are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


def constraints(lock_lines: Iterable[str], installed: set[str]) -> list[str]:
    """The lock's pins whose distribution is not among `installed` (canonical names)."""
    kept = []
    for line in lock_lines:
        pin = line.strip()
        if not pin or pin.startswith("#"):
            continue
        if canonical(pin.split("==", 1)[0]) not in installed:
            kept.append(pin)
    return kept


def installed_here() -> set[str]:
    return {canonical(d.metadata["Name"]) for d in importlib.metadata.distributions()}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} requirements.lock", file=sys.stderr)
        return 2
    lines = Path(argv[1]).read_text().splitlines()
    print("\n".join(constraints(lines, installed_here())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
