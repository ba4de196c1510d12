"""Memory with the image modes: a worker that restyles, upscales and follows sketches as
well as generating from text keeps its resident memory within 5% of one that only
generates from text.

The image-to-image pipeline is made from the loaded pipeline's own components
(`ImageModes`, diffusers' `from_pipe`), so the model is in memory once. Measured on the
tiny model on the CPU: text-to-image rounds until the memory settles, then the same
rounds with a restyle (256x256), an upscale (to 512x512) and a sketch (a tiny random
ControlNet) in each; and the parameter bytes of the image-to-image and ControlNet
pipelines that the text pipeline does not hold (0 and the ControlNet's own: shared).
`--family flux` or `sd3`: the same on that family's tiny model and tiny ControlNet.
Run: .venv/bin/python bench/image_modes_memory.py [--rounds N] [--family F]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from _common import one_thread, rss_mb, sample_images, tiny_model

from stylebot.engine.generation_request import GenerationRequest
from stylebot.engine.generator import Generator
from stylebot.engine.models import load_pipeline
from stylebot.engine.tiny_model import write_tiny_controlnet

TEXT = GenerationRequest(prompt="a lighthouse", seed=1, steps=2, width=256, height=256)


def tensor_bytes(pipe: Any) -> dict[int, int]:
    """Bytes of every parameter and buffer of a pipeline's modules, by storage address."""
    found: dict[int, int] = {}
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            found.update(tensor_bytes_of(component))
    return found


def tensor_bytes_of(module: torch.nn.Module) -> dict[int, int]:
    return {
        tensor.untyped_storage().data_ptr(): tensor.untyped_storage().nbytes()
        for tensor in [*module.parameters(), *module.buffers()]
    }


def settled(work: list[GenerationRequest], generator: Generator, rounds: int) -> float:
    for _ in range(rounds):
        for request in work:
            generator.generate(request)
        gc.collect()
    return rss_mb()


def main(rounds: int, family: str) -> None:
    one_thread()
    with tempfile.TemporaryDirectory() as tmp:
        model = tiny_model(Path(tmp), family)
        controlnet = write_tiny_controlnet(Path(tmp) / "controlnet", model)
        pipeline = load_pipeline(str(model), device="cpu")
        generator = Generator(pipeline, controlnets={"edges": str(controlnet)})
        [picture] = sample_images(1, size=256)
        restyle = replace(TEXT, init_image=picture, strength=0.6)
        upscale = replace(TEXT, width=512, height=512, init_image=picture, strength=0.35)
        sketch = replace(TEXT, init_image=picture, strength=1.0, follow="edges")
        # A text-only worker makes large images too: the same sizes on both sides.
        large = replace(TEXT, width=512, height=512)
        text_only = settled([TEXT, TEXT, large], generator, rounds)
        with_modes = settled([TEXT, restyle, upscale, sketch], generator, rounds)
        base = tensor_bytes(pipeline)
        image_pipe = generator.modes.image_to_image()
        extra = sum(n for ptr, n in tensor_bytes(image_pipe).items() if ptr not in base)
        print(f"model tensors: {sum(base.values()) / 2**20:.1f} MiB in the text pipeline")
        print(f"image-to-image pipeline tensors not shared with it: {extra / 2**20:.3f} MiB")
        sketch_pipe = generator.modes.sketches.pipeline("edges")
        unshared = sum(n for ptr, n in tensor_bytes(sketch_pipe).items() if ptr not in base)
        own = sum(tensor_bytes_of(sketch_pipe.controlnet).values())
        print(
            f"ControlNet pipeline tensors not shared with it: {unshared / 2**20:.3f} MiB "
            f"(the ControlNet's own: {own / 2**20:.3f} MiB)"
        )
        print(f"resident after {rounds} rounds of text-to-image: {text_only:.1f} MiB")
        print(
            f"resident after {rounds} more with a restyle, an upscale and a sketch: "
            f"{with_modes:.1f} MiB"
        )
        print(f"ratio: {with_modes / text_only:.3f} (target <= 1.05)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--family", choices=("sd15", "sd2", "sdxl", "flux", "sd3"), default="sd15")
    arguments = parser.parse_args()
    main(arguments.rounds, arguments.family)
