"""The README and docs/ stay true to the repository: every relative link reaches a file
(and, for `#anchor`, a heading in it), every repository path they name exists, nothing
points outside the repository (a fresh clone has nothing there), every document in
docs/ is reachable from the README, and `stylebot --help` and the docs name the same
commands and options."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

from stylebot.cli import main

ROOT = Path(__file__).resolve().parents[2]
# The READMEs a reader meets, and docs/.
READMES = [ROOT / "README.md", ROOT / "deploy" / "README.md", ROOT / "bench" / "README.md"]
DOCS = sorted([*READMES, *(ROOT / "docs").glob("*.md")])
# What the docs say about the `stylebot` command; each option must appear there.
COMMANDS_DOC = ROOT / "docs" / "operations.md"

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
# [text](target) and ![alt](target); the target ends at whitespace or ")".
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
# A path into the repository as the docs write them in code spans: `src/stylebot/cli.py`.
_REPO_PATH = re.compile(r"^(?:\.\.?/)*(?:src|tests|bench|deploy|docs)/[\w./-]*$|^\.\./")
# Files the reader makes (from an example next to them), not the repository.
MADE_BY_THE_READER = {"deploy/.env", "deploy/compose.gpus.yaml"}


def _prose(text: str) -> str:
    """The text without fenced code blocks (their brackets are code, not links)."""
    return _FENCE.sub("", text)


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: markup and punctuation out, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.strip().lower()
    kept = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in ("L", "N"))
    return kept.replace(" ", "-")


def anchors_of(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for heading in _HEADING.findall(_prose(path.read_text())):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def relative_links(path: Path) -> list[str]:
    prose = _INLINE_CODE.sub("", _prose(path.read_text()))
    return [
        target
        for target in _LINK.findall(prose)
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto:
    ]


def broken_link(path: Path, target: str) -> str | None:
    """Why `target`, a link in `path`, does not work (None when it does)."""
    file_part, _, anchor = target.partition("#")
    destination = (path.parent / file_part).resolve() if file_part else path
    if not destination.is_relative_to(ROOT):
        return f"{target} is outside the repository"
    if not destination.exists():
        return f"{target}: no such file"
    if anchor and destination.suffix == ".md" and anchor not in anchors_of(destination):
        return f"{target}: {destination.name} has no heading with the anchor #{anchor}"
    return None


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file_and_heading(doc: Path) -> None:
    links = relative_links(doc)
    problems = [why for target in links if (why := broken_link(doc, target))]
    assert not problems, f"{doc.relative_to(ROOT)}: " + "; ".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_path_named_exists(doc: Path) -> None:
    """`src/...`, `tests/...` and the like in code spans, read from the repository root
    (a `../` path from the document's folder): each must exist in the repository."""
    problems = []
    for span in _INLINE_CODE.findall(doc.read_text()):
        name = span.split(" ")[0].rstrip(".,:;")
        if name in MADE_BY_THE_READER or not _REPO_PATH.match(name):
            continue
        if any(ch in name for ch in "*{}<>"):
            continue
        base = doc.parent if name.startswith("..") else ROOT
        where = (base / name).resolve()
        if not where.is_relative_to(ROOT):
            problems.append(f"{name} is outside the repository")
        elif not where.exists():
            problems.append(f"{name}: no such file or folder")
    assert not problems, f"{doc.relative_to(ROOT)}: " + "; ".join(problems)


def test_every_document_in_docs_is_linked_from_the_readme() -> None:
    readme = ROOT / "README.md"
    linked = {
        (readme.parent / target.partition("#")[0]).resolve() for target in relative_links(readme)
    }
    in_docs = [p for p in DOCS if p.parent == ROOT / "docs"]
    orphans = [p.name for p in in_docs if p.resolve() not in linked]
    assert not orphans, f"README.md links none of: {', '.join(orphans)}"
    assert (ROOT / "docs" / "architecture.md") in in_docs


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def _subcommands(help_text: str) -> list[str]:
    """The names argparse lists under `positional arguments` as `{a,b}` or one a line."""
    listed = re.search(r"^  (COMMAND|ACTION)\n((?:    \S.*\n|      .*\n)+)", help_text, re.M)
    assert listed is not None, help_text
    return re.findall(r"^    (\S+)", listed.group(2), re.MULTILINE)


def test_the_docs_name_every_stylebot_command_and_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    documented = COMMANDS_DOC.read_text()
    missing = []
    top = _help(capsys)
    for option in sorted(set(re.findall(r"(--[a-z][a-z-]+)", top)) - {"--help"}):
        if option not in documented:
            missing.append(f"stylebot {option}")
    for command in _subcommands(top):
        text = _help(capsys, command)
        actions = _subcommands(text) if "ACTION" in text else []
        paths = [[command, action] for action in actions] or [[command]]
        for path in paths:
            name = "stylebot " + " ".join(path)
            if name not in documented:
                missing.append(name)
            own = _help(capsys, *path)
            for option in sorted(set(re.findall(r"(--[a-z][a-z-]+)", own)) - {"--help"}):
                if option not in documented:
                    missing.append(f"{name} {option}")
    assert not missing, f"{COMMANDS_DOC.name} does not mention: {', '.join(missing)}"
