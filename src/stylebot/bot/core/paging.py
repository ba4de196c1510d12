"""Long texts in pages that fit a platform's message limit, cut between lines.

Lists (styles, jobs, the admin queue) are one entry per line, so a page never ends
in the middle of an entry; only a single line longer than a whole page is cut, at a
space when there is one (that space is all that is left out).
"""

from __future__ import annotations


def pages(text: str, limit: int) -> list[str]:
    """``text`` as pages of at most ``limit`` characters, in order; at least one page."""
    if limit < 1:
        raise ValueError(f"a page holds at least one character, not {limit}")
    if len(text) <= limit:
        return [text]
    result: list[str] = []
    current = ""
    for line in text.split("\n"):
        for piece in _line_pieces(line, limit):
            joined = f"{current}\n{piece}" if current else piece
            if len(joined) <= limit:
                current = joined
                continue
            if current:
                result.append(current)
            current = piece
    if current or not result:
        result.append(current)
    return result


def _line_pieces(line: str, limit: int) -> list[str]:
    """One line in pieces of at most ``limit`` characters, cut at a space when possible
    (that space is the only character left out)."""
    pieces: list[str] = []
    while len(line) > limit:
        cut = line.rfind(" ", 0, limit + 1)
        if cut <= 0 or not line[:cut].strip():
            cut = _hard_cut(line, limit)
            pieces.append(line[:cut])
            line = line[cut:]
        else:
            pieces.append(line[:cut])
            line = line[cut + 1 :]
    pieces.append(line)
    return pieces


def _hard_cut(line: str, limit: int) -> int:
    """Where to cut a line with no space to cut at: at ``limit``, but never between a
    backslash and the character it escapes (escaped markup would come alive)."""
    backslashes = len(line[:limit]) - len(line[:limit].rstrip("\\"))
    return limit - 1 if backslashes % 2 and limit > 1 else limit


def keep_last(text: str, last: str, limit: int, marker: str = "…") -> str:
    """``text`` then ``last`` on a line of its own, within ``limit`` characters:
    ``text`` is shortened (marked by ``marker``) so that ``last``, an outcome, is
    never what gets cut."""
    tail = f"\n\n{last}" if text else last
    if len(text) + len(tail) <= limit:
        return text + tail
    if len(tail) >= limit:
        return last[: limit - len(marker)] + marker
    room = limit - len(tail) - len(marker)
    return text[:room].rstrip() + marker + tail
