"""Memory with 100 styles used in turn: the worker's resident memory stays
bounded by the adapter cache, against the memory with the cache just filled.

100 different LoRA files (one trained style, each copy scaled differently so
no two are alike) are generated with in turn through one Generator with an
8-adapter cache, on the tiny model on the CPU (64x64, 1 step).
Run: .venv/bin/python bench/adapter_memory.py [--styles N] [--cache N]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
from pathlib import Path

from _common import one_thread, rss_mb, sample_images, tiny_model
from safetensors.torch import load_file, save_file

from stylebot.engine.generation_request import GenerationRequest, LoraWeights
from stylebot.engine.generator import Generator
from stylebot.engine.models import load_pipeline
from stylebot.queue.payloads import TrainSettings
from stylebot.trainer.lora import train_lora

REQUEST = GenerationRequest(prompt="sks style", seed=1, steps=1, width=64, height=64)


def main(styles: int, cache: int) -> None:
    one_thread()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pipeline = load_pipeline(str(tiny_model(root)), device="cpu")
        settings = TrainSettings(steps=2, resolution=64, rank=8, learning_rate=1e-3)
        trained = train_lora(pipeline, sample_images(2), "sks style", settings, root / "base")
        weights = load_file(trained.weights_path)
        paths = []
        for i in range(styles):
            path = root / "styles" / f"style{i}.safetensors"
            path.parent.mkdir(exist_ok=True)
            save_file({k: v * (1 + i / styles) for k, v in weights.items()}, path)
            paths.append(path)

        generator = Generator(pipeline, max_loaded_adapters=cache)
        samples: list[tuple[int, float]] = []
        for i, path in enumerate(paths, start=1):
            generator.generate(REQUEST, lora=LoraWeights(f"style{i}", path))
            if i % 10 == 0 or i == cache:
                gc.collect()
                samples.append((i, rss_mb()))
        loaded = len(generator.loaded_adapters)

    filled = dict(samples)[cache]
    peak = max(mb for _, mb in samples)
    print(f"{styles} styles in turn, adapter cache {cache}, rank 8, tiny model, CPU")
    for used, mb in samples:
        print(f"  after {used:3d} styles: {mb:7.1f} MiB")
    print(f"adapters loaded at the end: {loaded} (cache size {cache})")
    print(f"memory with the cache just filled {filled:7.1f} MiB, highest after {peak:7.1f} MiB")
    print(f"ratio highest/filled: {peak / filled:.3f} (bounded: stays near 1)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--styles", type=int, default=100)
    parser.add_argument("--cache", type=int, default=8)
    args = parser.parse_args()
    main(args.styles, args.cache)
