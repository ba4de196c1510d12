"""The habits of issue 15 that a reader of `src/` can check, checked: a module over ~400
lines says why at its top, every `# type: ignore[code]` says on its line why, and every
repository path a comment or docstring names exists (a moved test or doc leaves none
pointing at nothing)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "src").rglob("*.py"))
LONG_MODULE_LINES = 400
# `# type: ignore[code]` followed, on the same line, by `# why`.
_IGNORE = re.compile(r"#\s*type:\s*ignore\b(?P<code>\[[^\]]*\])?(?P<rest>.*)$")
_REASON = re.compile(r"^\s*#\s*\S")
# A path into the repository, not part of a URL or of a longer path.
_REPO_PATH = re.compile(r"(?<![\w/.-])(?:src|tests|docs|deploy|bench|tools)/[\w./-]*[\w/]")


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_every_module_over_400_lines_says_why_at_its_top() -> None:
    silent = []
    for path in SOURCES:
        text = path.read_text()
        if text.count("\n") <= LONG_MODULE_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if f"{LONG_MODULE_LINES} lines" not in docstring:
            silent.append(_relative(path))
    assert silent == [], "over 400 lines with no reason in their docstring"


def test_every_type_ignore_names_its_error_and_says_why_on_its_line() -> None:
    unexplained = []
    for path in SOURCES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            found = _IGNORE.search(line)
            if found is None:
                continue
            if not found["code"] or not _REASON.match(found["rest"]):
                unexplained.append(f"{_relative(path)}:{number}: {line.strip()}")
    assert unexplained == []


def test_every_repository_path_the_sources_name_exists() -> None:
    missing = []
    for path in SOURCES:
        for named in _REPO_PATH.findall(path.read_text()):
            if not (ROOT / named.rstrip("/")).exists():
                missing.append(f"{_relative(path)}: {named}")
    assert missing == []
