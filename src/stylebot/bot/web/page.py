"""The verify page's HTML: a plain form that works without JavaScript, and the report.

Everything shown that did not come from this file (the core's report, which quotes the
file name and the file's own Content Credentials) is HTML-escaped; the page loads no
script or style but its own two files (see SECURITY_HEADERS), so nothing a visitor
uploads can run in another visitor's browser.
"""

from __future__ import annotations

import re
from html import escape

from stylebot.bot.core.images import ALLOWED_EXTENSIONS
from stylebot.bot.core.replies import ErrorReply, VerifyReport, VerifyVerdict

#: Only this server's own script and style, no inline code; no framing, no referrer.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}

HEADLINES = {
    VerifyVerdict.MADE: "Made with stylebot",
    VerifyVerdict.ALTERED: "An altered copy of a stylebot image",
    VerifyVerdict.RESEMBLES: "Resembles a stylebot image",
    VerifyVerdict.MARK_ONLY: "Carries a stylebot watermark (not compared)",
    VerifyVerdict.MISMATCH: "A stylebot watermark on another picture",
    VerifyVerdict.UNKNOWN_MARK: "A stylebot watermark this bot has no record of",
    VerifyVerdict.NO_MARK: "No stylebot watermark",
}
ANOTHER = "Check another image"
_DISCORD_MENTION = re.compile(r"<@!?(\d+)>")
_ACCEPT = ",".join([*sorted(ALLOWED_EXTENSIONS), "image/png", "image/jpeg", "image/webp"])


def _document(body: str) -> str:
    # Relative URLs: the page works under whatever path the reverse proxy gives it.
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Check an image: stylebot</title>"
        '<link rel="stylesheet" href="verify.css">'
        '<script src="verify.js" defer></script>'
        f"</head><body><main>{body}</main></body></html>\n"
    )


def _form(max_bytes: int, heading: str = "Was this image made with stylebot?") -> str:
    return (
        f"<h1>{heading}</h1>"
        "<p>Choose or drop an image to read its stylebot watermark and Content "
        "Credentials. You see what anyone would: who made it and when, and the prompt "
        "and style only of images made in public.</p>"
        '<form id="check" method="post" enctype="multipart/form-data">'
        '<label id="drop" for="image">Image (PNG, JPEG or WebP, at most '
        f"{max_bytes / 1_048_576:.0f} MB)</label>"
        f'<input id="image" name="image" type="file" accept="{_ACCEPT}" required>'
        '<button type="submit">Check</button>'
        "</form>"
    )


def form_page(max_bytes: int) -> str:
    return _document(_form(max_bytes))


def _shown(text: str) -> str:
    """A line of the core's report as HTML: a Discord mention, which only Discord can
    turn into a name, says what it is; everything escaped."""
    return escape(_DISCORD_MENTION.sub(r"Discord user \1", text))


def report_page(report: VerifyReport, max_bytes: int) -> str:
    lines = "".join(f"<p>{_shown(line)}</p>" for line in report.text.splitlines() if line)
    result = (
        f'<section id="result" class="verdict {escape(report.verdict.value)}" '
        f'data-verdict="{escape(report.verdict.value)}">'
        f"<h2>{escape(HEADLINES[report.verdict])}</h2>{lines}</section>"
    )
    return _document(result + _form(max_bytes, ANOTHER))


def error_page(problem: ErrorReply | str, max_bytes: int) -> str:
    text = problem.text if isinstance(problem, ErrorReply) else problem
    result = (
        '<section id="result" class="error" role="alert" data-verdict="error">'
        f"<h2>This file could not be checked</h2><p>{_shown(text)}</p></section>"
    )
    return _document(result + _form(max_bytes, ANOTHER))


STYLE = """\
body { font-family: system-ui, sans-serif; margin: 0; background: #f6f6f4; color: #1b1b1b; }
main { max-width: 42rem; margin: 2rem auto; padding: 0 1rem; }
form { display: grid; gap: .75rem; margin-top: 1.5rem; }
#drop { display: block; padding: 2rem 1rem; border: 2px dashed #888; border-radius: .5rem;
  text-align: center; background: #fff; }
#drop.over { border-color: #1d5fd1; background: #eef4ff; }
button { justify-self: start; padding: .5rem 1.25rem; font-size: 1rem; }
.verdict, .error { padding: .75rem 1rem; border-radius: .5rem; background: #fff;
  border-left: .4rem solid #888; overflow-wrap: anywhere; }
.verdict p, .error p { margin: .35rem 0; }
.verdict.made { border-color: #1f8a3b; }
.verdict.altered, .verdict.resembles, .verdict.mark-only { border-color: #c98a00; }
.verdict.mismatch, .verdict.unknown-mark, .error { border-color: #b3261e; }
"""

# Progressive enhancement: dropping a file anywhere on the page submits it. Without
# JavaScript the form's file input does the same.
SCRIPT = """\
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("check");
  const input = document.getElementById("image");
  const zone = document.getElementById("drop");
  if (!form || !input || !zone) return;
  const over = (on) => (event) => {
    event.preventDefault();
    zone.classList.toggle("over", on);
  };
  document.addEventListener("dragover", over(true));
  document.addEventListener("dragleave", over(false));
  document.addEventListener("drop", (event) => {
    over(false)(event);
    const files = event.dataTransfer && event.dataTransfer.files;
    if (!files || files.length !== 1) return;
    input.files = files;
    form.requestSubmit();
  });
});
"""
