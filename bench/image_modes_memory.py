"""Memory with the image modes: a worker that restyles, upscales, extends, repaints and
follows sketches as well as generating from text keeps its resident memory within 5% of one
that only generates from text.

The image-to-image, inpainting and ControlNet pipelines are made from the loaded
pipeline's own components (`ImageModes`, diffusers' `from_pipe`), so the model is in
memory once. Each side runs in a process of its own (one side's allocations cannot leak
into the other's figure), loads the model through the product's `load_pipeline` and
`Generator`, and runs rounds of its requests until its resident memory settles (two
rounds in a row within 1%):

- text: text-to-image at the small and the large size;
- modes: the same plus a restyle, an upscale (the small size to the large), an extend
  and a repaint in each round;
- sketch: the modes plus a sketch (a ControlNet of the model's size, random weights).

Reported per side: resident memory after loading, settled (and how much of it is pages
mapped from the model's files), the peak while generating (VmHWM reset after loading) and
after malloc_trim (held, not cached by the C heap); the bytes of tensors the mode
pipelines hold that the text pipeline does not (by storage: 0 when shared), and of
tensors alive after the rounds that no pipeline holds (a kept buffer would show there).
The target is the modes side's settled memory over the text side's. The ControlNet is a
second model the operator chose to load, not an overhead of the modes: the sketch side's
ratio is given with the ControlNet's own tensor bytes taken off its resident memory, and
as measured.

--size sd15 (the default): an SD 1.5-sized model with random weights (UNet 860 M, CLIP
ViT-L/14 123 M, VAE 84 M parameters, float32: 4.0 GiB; the ControlNet 361 M, 1.4 GiB),
written once into a cache folder (`_real_size_models.py`, ~50 s, 5.4 GB), 64 and 128 px
(`--px`), 2 steps; 4-7 minutes on a shared 2-core machine. --size tiny: the tiny model at
256 and 512 px, quick, but on a 7.6 MiB model the allocator's noise is larger than what
is measured (settled ratios 0.98-1.27 from run to run; 1.01 after malloc_trim).

Measured 2026-12-06 (load average 4-5), sd15 at 64/128 px, two runs: text 4453 and 4434
MiB settled, with the modes 4589 and 4611 MiB: 1.030 and 1.040 (1.031 and 1.029 after
malloc_trim); with a sketch too, less the ControlNet's own 1378 MiB: 1.012 and 1.030.
The image pipelines share every tensor (0 MiB not shared); what the modes add is mostly
the VAE's encoder (130 MiB), mapped from its file but never read by text-to-image. At 128
and 256 px: 1.021 settled, 1.031 trimmed; with a sketch, less the ControlNet, 1.058 settled
(the C heap keeping the ControlNet's freed activations) and 1.032 trimmed.

Run: .venv/bin/python bench/image_modes_memory.py [--size sd15|tiny] [--px N] [--rounds N]
[--repeats N] [--cache DIR] [--family sd15|flux|sd3 (tiny only)]. Figures: bench/README.md
("memory with the image modes").
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from _common import (
    file_rss_mb,
    one_thread,
    peak_rss_mb,
    reset_peak_rss,
    rss_mb,
    sample_images,
    tiny_model,
)
from _real_size_models import sd15_sized_models

from stylebot.engine.generation_request import GenerationRequest
from stylebot.engine.generator import Generator
from stylebot.engine.image_modes import box_mask, extended_canvas
from stylebot.engine.models import load_pipeline
from stylebot.engine.tiny_model import write_tiny_controlnet

SIDES = ("text", "modes", "sketch")
# The small size of each model's requests by default; the large one is twice it (the
# upscale goes from one to the other).
SMALL_PX = {"tiny": 256, "sd15": 64}
# Settled: the resident memory after a round within this share of the round's before.
SETTLED_WITHIN = 0.01
MIN_ROUNDS = 2


@dataclass
class SideFigures:
    side: str
    loaded_mib: float
    settled_mib: float
    # Of the settled memory, pages of mapped files (the weights, when mapped from them).
    settled_file_mib: float
    # After handing the C heap's free memory back (malloc_trim): what is held, not cached.
    trimmed_mib: float
    # Tensors alive after the rounds that no pipeline's module holds (a kept buffer).
    stray_tensors_mib: float
    peak_generating_mib: float
    rounds: int
    per_round_mib: list[float]
    model_tensors_mib: float
    # The VAE's encoder: only the image modes use it (to encode the picture).
    vae_encoder_mib: float
    # Tensors of the mode pipelines that the text pipeline does not hold, by pipeline.
    unshared_mib: dict[str, float]
    controlnet_own_mib: float


def storages(module: torch.nn.Module) -> dict[int, int]:
    """Bytes of every parameter and buffer of a module, by storage address: a tensor two
    pipelines share is counted once."""
    return {
        tensor.untyped_storage().data_ptr(): tensor.untyped_storage().nbytes()
        for tensor in [*module.parameters(), *module.buffers()]
    }


def pipeline_storages(pipe: Any) -> dict[int, int]:
    found: dict[int, int] = {}
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            found.update(storages(component))
    return found


def stray_tensor_bytes(held: dict[int, int]) -> int:
    """Bytes of the tensors alive now whose storage no pipeline module holds."""
    stray: dict[int, int] = {}
    for thing in gc.get_objects():
        if isinstance(thing, torch.Tensor) and not thing.is_meta:
            storage = thing.untyped_storage()
            if storage.data_ptr() not in held:
                stray[storage.data_ptr()] = storage.nbytes()
    return sum(stray.values())


def requests_for(side: str, small: int) -> list[GenerationRequest]:
    large = 2 * small
    text = GenerationRequest(prompt="a lighthouse", seed=1, steps=2, width=small, height=small)
    # A text-only worker makes large images too: both sides draw at both sizes.
    work = [text, replace(text, width=large, height=large)]
    if side == "text":
        return work
    [picture] = sample_images(1, size=small)
    inner = small * 2 // 3
    offset = (small - inner) // 2
    canvas, outside = extended_canvas(picture, small, small, (offset, offset, inner, inner))
    work += [
        replace(text, init_image=picture, strength=0.6),  # restyle
        replace(text, width=large, height=large, init_image=picture, strength=0.35),  # upscale
        replace(text, init_image=canvas, mask_image=outside, strength=1.0),  # extend
        replace(
            text,
            init_image=picture,
            mask_image=box_mask(small, small, (0, 0, small // 2, small // 2)),
            strength=1.0,
        ),  # repaint
    ]
    if side == "sketch":
        work.append(replace(text, init_image=picture, strength=1.0, follow="edges"))
    return work


def run_side(side: str, small: int, model: str, controlnet: str, rounds: int) -> SideFigures:
    """One side's figures, in this process (the parent starts one process per side)."""
    one_thread()
    # Configured on every side, as an operator would: only a sketch loads it.
    pipeline = load_pipeline(model, device="cpu")
    generator = Generator(pipeline, controlnets={"edges": controlnet})
    gc.collect()
    loaded = rss_mb()
    reset_peak_rss()
    work = requests_for(side, small)
    per_round: list[float] = []
    for _ in range(rounds):
        for request in work:
            generator.generate(request)
        gc.collect()
        per_round.append(rss_mb())
        if len(per_round) >= MIN_ROUNDS and abs(per_round[-1] - per_round[-2]) <= (
            SETTLED_WITHIN * per_round[-2]
        ):
            break
    settled = per_round[-1]
    settled_file = file_rss_mb()
    base = pipeline_storages(pipeline)
    mode_pipes: dict[str, Any] = {}
    if side != "text":
        mode_pipes["image-to-image"] = generator.modes.image_to_image()
        mode_pipes["inpainting"] = generator.modes.inpainting()
    controlnet_own = 0
    if side == "sketch":
        sketch = generator.modes.sketches.pipeline("edges")
        mode_pipes["controlnet"] = sketch
        controlnet_own = sum(storages(sketch.controlnet).values())
    held = dict(base)
    for pipe in mode_pipes.values():
        held.update(pipeline_storages(pipe))
    stray = stray_tensor_bytes(held)
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    unshared = {
        name: sum(n for ptr, n in pipeline_storages(pipe).items() if ptr not in base) / 2**20
        for name, pipe in mode_pipes.items()
    }
    return SideFigures(
        side=side,
        loaded_mib=loaded,
        settled_mib=settled,
        settled_file_mib=settled_file,
        trimmed_mib=rss_mb(),
        stray_tensors_mib=stray / 2**20,
        peak_generating_mib=peak_rss_mb(),
        rounds=len(per_round),
        per_round_mib=per_round,
        model_tensors_mib=sum(base.values()) / 2**20,
        vae_encoder_mib=sum(
            sum(storages(part).values()) for part in _vae_encoder_parts(pipeline.vae)
        )
        / 2**20,
        unshared_mib=unshared,
        controlnet_own_mib=controlnet_own / 2**20,
    )


def _vae_encoder_parts(vae: Any) -> list[torch.nn.Module]:
    return [part for part in (vae.encoder, getattr(vae, "quant_conv", None)) if part is not None]


def side_in_its_own_process(
    side: str, small: int, model: Path, controlnet: Path, rounds: int
) -> SideFigures:
    command = [sys.executable, __file__, "--side", side, "--px", str(small)]
    command += ["--rounds", str(rounds)]
    command += ["--model", str(model), "--controlnet", str(controlnet)]
    # Its errors and warnings go to this stderr; its figures come back on its stdout.
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    return SideFigures(**json.loads(done.stdout.strip().splitlines()[-1]))


def report(figures: dict[str, SideFigures]) -> None:
    text, modes, sketch = (figures[side] for side in SIDES)
    print(
        f"model tensors: {text.model_tensors_mib:.1f} MiB in the text pipeline, of which the "
        f"VAE's encoder (used by the image modes only) {text.vae_encoder_mib:.1f} MiB"
    )
    for name, mib in {**modes.unshared_mib, **sketch.unshared_mib}.items():
        print(f"{name} pipeline tensors not shared with it: {mib:.3f} MiB")
    print(f"the ControlNet's own tensors: {sketch.controlnet_own_mib:.1f} MiB")
    for side in figures.values():
        rounds = ", ".join(f"{mib:.0f}" for mib in side.per_round_mib)
        print(
            f"{side.side}: loaded {side.loaded_mib:.1f} MiB; settled {side.settled_mib:.1f} MiB "
            f"after {side.rounds} rounds ({rounds}), {side.settled_file_mib:.1f} MiB of it "
            f"mapped from files, {side.settled_mib - side.settled_file_mib:.1f} MiB not; "
            f"peak while generating {side.peak_generating_mib:.1f} MiB; "
            f"{side.trimmed_mib:.1f} MiB after malloc_trim; tensors held outside the "
            f"pipelines {side.stray_tensors_mib:.3f} MiB"
        )
    without_controlnet = sketch.settled_mib - sketch.controlnet_own_mib
    print(
        f"ratio, modes / text: settled {modes.settled_mib / text.settled_mib:.3f}, peak "
        f"{modes.peak_generating_mib / text.peak_generating_mib:.3f}, after malloc_trim "
        f"{modes.trimmed_mib / text.trimmed_mib:.3f} (target <= 1.05)"
    )
    print(
        f"ratio, sketch less the ControlNet's own tensors / text: settled "
        f"{without_controlnet / text.settled_mib:.3f}; as measured "
        f"{sketch.settled_mib / text.settled_mib:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=sorted(SMALL_PX), default="sd15")
    parser.add_argument("--px", type=int, help="the small size (default: 256 tiny, 64 sd15)")
    parser.add_argument(
        "--family",
        choices=("sd15", "flux", "sd3"),
        default="sd15",
        help="with --size tiny: that family's tiny model and ControlNet",
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs of the three sides")
    parser.add_argument("--rounds", type=int, default=6, help="at most, per side")
    parser.add_argument(
        "--cache", type=Path, default=None, help="where the sd15-sized model is kept"
    )
    # One side in this process: how the parent runs each side.
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--controlnet", help=argparse.SUPPRESS)
    args = parser.parse_args()
    small = args.px or SMALL_PX[args.size]
    if args.size != "tiny" and args.family != "sd15":
        parser.error("--family flux or sd3 needs --size tiny (no real-size flow model here)")
    if args.side is not None:
        side = run_side(args.side, small, args.model, args.controlnet, args.rounds)
        print(json.dumps(asdict(side)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.size == "tiny":
            model = tiny_model(Path(tmp), args.family)
            controlnet = write_tiny_controlnet(Path(tmp) / "controlnet", model)
        else:
            model, controlnet = sd15_sized_models(args.cache)
        # In turn, one process at a time: a side never shares the machine's memory with another.
        for repeat in range(args.repeats):
            figures = {
                side: side_in_its_own_process(side, small, model, controlnet, args.rounds)
                for side in SIDES
            }
            print(f"run {repeat + 1} of {args.repeats}, {small} and {2 * small} px:")
            report(figures)


if __name__ == "__main__":
    main()
