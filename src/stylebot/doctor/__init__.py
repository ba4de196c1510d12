"""`stylebot doctor`: is this host ready to run stylebot, and if not, what to do.

Each check prints OK, WARN or FAIL with one line on what it found and, when it
is not OK, one line on how to fix it. The exit status is 1 when any check
failed, else 0. Nothing here changes the data directory: the embedded Redis is
tried in a temporary directory, the database is not opened (a running front
end holds it).
"""

from __future__ import annotations

from collections.abc import Callable

from stylebot.config import Settings
from stylebot.doctor.captioner import check_captioner
from stylebot.doctor.controlnet import check_controlnet
from stylebot.doctor.device import check_gpu, check_model
from stylebot.doctor.host import (
    check_blob_store,
    check_blobs,
    check_disk,
    check_metrics,
    check_redis,
    check_settings,
    check_tokens,
)
from stylebot.doctor.results import CheckResult, Level, fail
from stylebot.doctor.signing import check_signature_lifetime, check_signing_certificate
from stylebot.redaction import TextOutput

ALL_CHECKS: tuple[Callable[[Settings], CheckResult], ...] = (
    check_settings,
    check_tokens,
    check_redis,
    check_model,
    check_captioner,
    check_gpu,
    check_controlnet,
    check_disk,
    check_blob_store,
    check_metrics,
    check_signing_certificate,
    check_signature_lifetime,
)


def run_checks(
    settings: Settings, *, load_model: bool = True, scan_blobs: bool = False
) -> list[CheckResult]:
    results = []
    checks = (*ALL_CHECKS, check_blobs) if scan_blobs else ALL_CHECKS
    for check in checks:
        if check in (check_model, check_captioner, check_controlnet) and not load_model:
            continue
        try:
            results.append(check(settings))
        except Exception as exc:  # a check that crashes is a finding, not a traceback
            name = check.__name__.removeprefix("check_").replace("_", " ")
            results.append(
                fail(name, f"the check crashed: {type(exc).__name__}: {exc}", "report this")
            )
    return results


def run_doctor(
    settings: Settings, out: TextOutput, *, load_model: bool = True, scan_blobs: bool = False
) -> int:
    """Print each check; 1 if any failed, else 0."""
    results = run_checks(settings, load_model=load_model, scan_blobs=scan_blobs)
    width = max(len(result.name) for result in results)
    for result in results:
        print(f"{result.level.value:<4}  {result.name:<{width}}  {result.found}", file=out)
        if result.fix:
            print(f"{'':<4}  {'':<{width}}  fix: {result.fix}", file=out)
    failed = sum(result.level is Level.FAIL for result in results)
    warned = sum(result.level is Level.WARN for result in results)
    print(f"\n{failed} failed, {warned} warnings, {len(results)} checks", file=out)
    return 1 if failed else 0
