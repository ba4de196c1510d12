"""Memory with the image modes: a worker that restyles and upscales as well as generating
from text keeps its resident memory within 5% of one that only generates from text.

The image-to-image pipeline is made from the loaded pipeline's own components
(`ImageModes`, diffusers' `from_pipe`), so the model is in memory once. Measured on the
tiny model on the CPU: text-to-image rounds until the memory settles, then the same
rounds with a restyle (256x256) and an upscale (to 512x512) in each; and the parameter
bytes of the image-to-image pipeline that the text pipeline does not hold (0: shared).
Run: .venv/bin/python bench/image_modes_memory.py [--rounds N]
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

TEXT = GenerationRequest(prompt="a lighthouse", seed=1, steps=2, width=256, height=256)


def tensor_bytes(pipe: Any) -> dict[int, int]:
    """Bytes of every parameter and buffer of a pipeline's modules, by storage address."""
    found: dict[int, int] = {}
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            for tensor in [*component.parameters(), *component.buffers()]:
                found[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
    return found


def settled(work: list[GenerationRequest], generator: Generator, rounds: int) -> float:
    for _ in range(rounds):
        for request in work:
            generator.generate(request)
        gc.collect()
    return rss_mb()


def main(rounds: int) -> None:
    one_thread()
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = load_pipeline(str(tiny_model(Path(tmp))), device="cpu")
        generator = Generator(pipeline)
        [picture] = sample_images(1, size=256)
        restyle = replace(TEXT, init_image=picture, strength=0.6)
        upscale = replace(TEXT, width=512, height=512, init_image=picture, strength=0.35)
        # A text-only worker makes large images too: the same sizes on both sides.
        large = replace(TEXT, width=512, height=512)
        text_only = settled([TEXT, TEXT, large], generator, rounds)
        with_modes = settled([TEXT, restyle, upscale], generator, rounds)
        base = tensor_bytes(pipeline)
        image_pipe = generator.modes.image_to_image()
        extra = sum(n for ptr, n in tensor_bytes(image_pipe).items() if ptr not in base)
        print(f"model tensors: {sum(base.values()) / 2**20:.1f} MiB in the text pipeline")
        print(f"image-to-image pipeline tensors not shared with it: {extra / 2**20:.3f} MiB")
        print(f"resident after {rounds} rounds of text-to-image: {text_only:.1f} MiB")
        print(f"resident after {rounds} more with a restyle and an upscale: {with_modes:.1f} MiB")
        print(f"ratio: {with_modes / text_only:.3f} (target <= 1.05)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    main(parser.parse_args().rounds)
