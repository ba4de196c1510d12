"""Doctor's check of /sketch's ControlNets: each configured one is of the base model's
family's ControlNet class and widths, as the worker checks them at start-up
(stylebot.engine.sketch_control)."""

from __future__ import annotations

from stylebot.config import Settings
from stylebot.doctor.device import _torch
from stylebot.doctor.results import CheckResult, fail, ok, warn


def check_controlnet(settings: Settings) -> CheckResult:
    controlnets = settings.controlnets
    if not controlnets:
        return ok("controlnet", "none configured: /sketch is off (STYLEBOT_CONTROLNET_EDGES)")
    named = ", ".join(f"{kind} {source}" for kind, source in controlnets.items())
    if _torch() is None:
        return warn(
            "controlnet",
            f"{named} not checked: torch is not installed here (a front end image)",
            "run `stylebot doctor` on a worker host to check the ControlNet",
        )
    from stylebot.engine.models import load_pipeline, model_family
    from stylebot.engine.sketch_control import SketchUnsupported, check_controlnets

    try:
        # Loaded again, as the worker loads it: the family and widths decide.
        pipeline = load_pipeline(
            settings.model,
            device="cpu",
            dtype=settings.dtype,
            family=settings.base_model_family,
            config=settings.base_model_config or None,
        )
        classes = check_controlnets(pipeline, controlnets, settings.depth_estimator or "")
    except SketchUnsupported as exc:
        return fail("controlnet", str(exc), "see docs/operations.md, Following a sketch")
    except (OSError, ValueError, RuntimeError) as exc:
        return fail(
            "controlnet",
            f"{named}: {type(exc).__name__}: {exc}",
            "set STYLEBOT_CONTROLNET_EDGES to a ControlNet folder or hub id",
        )
    kinds = ", ".join(f"{kind} {source}: a {classes[kind]}" for kind, source in controlnets.items())
    return ok("controlnet", f"{kinds} for this {model_family(pipeline)} model")
