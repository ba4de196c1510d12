"""Doctor check of the captioner (`captioner` setting): it loads as the worker loads it,
which family it is, and it writes a caption for a small test image."""

from __future__ import annotations

import time

from PIL import Image

from stylebot.config import Settings
from stylebot.doctor.results import CheckResult, fail, ok, warn

NAME = "captioner"
FIX = (
    "set STYLEBOT_CAPTIONER to a Florence-2 (e.g. florence-community/Florence-2-base) or BLIP "
    "captioning checkpoint (e.g. Salesforce/blip-image-captioning-base), or leave it empty"
)


def check_captioner(settings: Settings) -> CheckResult:
    source = settings.captioner
    if not source:
        return ok(NAME, "none configured: /captions auto tells members so")
    try:
        import torch
    except ImportError:  # a front end image: the worker hosts load it
        return warn(
            NAME,
            f"{source} not checked: torch is not installed here (a front end image)",
            "run `stylebot doctor` on a worker host to check the captioner",
        )
    from stylebot.engine.captioner import Captioner, UnknownCaptioner

    device = settings.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    started = time.perf_counter()
    try:
        captioner = Captioner(source, device)
        captioner.caption([Image.new("RGB", (64, 64), (128, 128, 128))])
    except UnknownCaptioner as exc:
        return fail(NAME, f"{source} is not a captioner: {exc}", FIX)
    except (OSError, ValueError, RuntimeError) as exc:
        return fail(NAME, f"{source} does not load: {type(exc).__name__}: {exc}", FIX)
    seconds = time.perf_counter() - started
    return ok(
        NAME,
        f"{source} ({captioner.family}) loads on {device} and captions a test image "
        f"in {seconds:.1f} s",
    )
