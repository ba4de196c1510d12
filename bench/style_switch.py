"""Style switch: generations alternating between two cached styles, against
generations that keep one style; and a cold load of a style from disk.

Tiny model on the CPU, 128x128, 4 steps. Target: alternating at most 5% slower.
Run: .venv/bin/python bench/style_switch.py [--runs N]
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

from _common import median_ms, one_thread, sample_images, timed, tiny_model

from stylebot.engine import GenerationRequest, Generator, LoraWeights, load_pipeline
from stylebot.queue.payloads import TrainSettings
from stylebot.trainer import train_lora

REQUEST = GenerationRequest(prompt="sks style, a harbour", seed=1, steps=4, width=128, height=128)


def main(runs: int) -> None:
    one_thread()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pipeline = load_pipeline(str(tiny_model(root)), device="cpu")
        settings = TrainSettings(steps=2, resolution=64, rank=4, learning_rate=1e-2)
        images = sample_images(2)
        paths = []
        for seed in range(2):
            run = replace(settings, seed=seed)
            paths.append(
                train_lora(pipeline, images, "sks style", run, root / f"s{seed}").weights_path
            )
        styles = [LoraWeights(f"style{i}", path) for i, path in enumerate(paths)]
        generator = Generator(pipeline, max_loaded_adapters=8)
        for style in styles:  # load both: this measures cached styles
            generator.generate(REQUEST, lora=style)

        one_style: list[float] = []
        alternating: list[float] = []
        for i in range(runs):
            # Interleaved, so whatever else the machine does slows both alike.
            one_style.append(timed(lambda: generator.generate(REQUEST, lora=styles[0])))
            alternating.append(timed(lambda i=i: generator.generate(REQUEST, lora=styles[i % 2])))

        # Cold: a cache of one adapter, alternating, so every call loads from disk.
        cold_generator = Generator(pipeline, max_loaded_adapters=1)
        for style in generator.loaded_adapters:
            pipeline.delete_adapters([style])
        cold = [
            timed(lambda i=i: cold_generator.generate(REQUEST, lora=styles[i % 2]))
            for i in range(max(4, runs // 4))
        ]

    base, switch, load = median_ms(one_style), median_ms(alternating), median_ms(cold)
    print(f"runs: {runs}, tiny model, 128x128, 4 steps, CPU, one torch thread")
    print(f"one style                 median {base:7.1f} ms")
    print(f"two cached styles, alt.   median {switch:7.1f} ms")
    print(f"cold load from disk, alt. median {load:7.1f} ms")
    print(f"ratio alternating/one style: {switch / base:.3f} (target: <= 1.05)")
    print(f"ratio cold load/one style:   {load / base:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    main(parser.parse_args().runs)
