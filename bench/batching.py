"""Batching: eight same-style requests in one pipeline call, against the same
eight made one by one, on the tiny model on the CPU (256x256, 4 steps).

Target: never slower on the CPU (the gain is a GPU gain). Each image keeps its
own seed's noise; the batched images match the one-by-one ones to within one
8-bit level (see tests/integration/engine/test_generator.py).

Mixed styles: eight requests in two styles and none (3 + 3 + 2) in one call
through PEFT's per-sample adapters (`Generator.generate_mixed`), against the
same eight one by one and against one batch per style. The worker mixes
styles on CUDA only (`mixed_style_batches = auto`): on the CPU a bigger batch
is not cheaper per image, and each LoRA layer runs once per style.
Run: .venv/bin/python bench/batching.py [--rounds N] [--batch 8]
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

from _common import median_ms, one_thread, sample_images, timed, tiny_model

from stylebot.engine.generation_request import GenerationRequest, LoraWeights
from stylebot.engine.generator import Generator
from stylebot.engine.models import load_pipeline
from stylebot.queue.payloads import TrainSettings
from stylebot.trainer.lora import train_lora

REQUEST = GenerationRequest(prompt="a lighthouse", steps=4, width=256, height=256)


def main(rounds: int, batch: int) -> None:
    one_thread()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pipeline = load_pipeline(str(tiny_model(root)), device="cpu")
        generator = Generator(pipeline)
        requests = [replace(REQUEST, seed=i, prompt=f"a lighthouse {i}") for i in range(batch)]
        settings = TrainSettings(steps=2, resolution=64, rank=4, learning_rate=1e-2)
        styles = [
            LoraWeights(
                f"style{seed}",
                train_lora(
                    pipeline,
                    sample_images(2),
                    "sks style",
                    replace(settings, seed=seed),
                    root / str(seed),
                ).weights_path,
            )
            for seed in range(2)
        ]
        # 3 + 3 + 2: two styles and the base model.
        styled = [
            (request, [styles[0], styles[1], None][i % 3]) for i, request in enumerate(requests)
        ]
        by_style: dict[str | None, list[GenerationRequest]] = {}
        for request, lora in styled:
            by_style.setdefault(None if lora is None else lora.adapter_name, []).append(request)
        generator.generate(REQUEST)  # warm-up
        generator.generate_mixed(styled)  # loads both styles
        one_by_one: list[float] = []
        batched: list[float] = []
        mixed_one_by_one: list[float] = []
        mixed_per_style: list[float] = []
        mixed: list[float] = []
        for _ in range(rounds):
            one_by_one.append(timed(lambda: [generator.generate(r) for r in requests]))
            batched.append(timed(lambda: generator.generate_batch(requests)))
            mixed_one_by_one.append(
                timed(lambda: [generator.generate(r, lora=lora) for r, lora in styled])
            )
            mixed_per_style.append(
                timed(
                    lambda: [
                        generator.generate_batch(
                            group, lora=next((s for s in styles if s.adapter_name == name), None)
                        )
                        for name, group in by_style.items()
                    ]
                )
            )
            mixed.append(timed(lambda: generator.generate_mixed(styled)))

    alone, together = median_ms(one_by_one), median_ms(batched)
    m_alone, m_groups, m_one = (
        median_ms(mixed_one_by_one),
        median_ms(mixed_per_style),
        median_ms(mixed),
    )
    print(
        f"rounds: {rounds}, {batch} requests, tiny model, 256x256, 4 steps, CPU, one torch thread"
    )
    print(f"one by one   median {alone:8.1f} ms ({alone / batch:6.1f} ms per image)")
    print(f"one batch    median {together:8.1f} ms ({together / batch:6.1f} ms per image)")
    print(f"ratio batched/one by one: {together / alone:.3f} (target: <= 1.0)")
    print("mixed styles (2 LoRAs + base, 3/3/2):")
    print(f"one by one          median {m_alone:8.1f} ms ({m_alone / batch:6.1f} ms per image)")
    print(f"a batch per style   median {m_groups:8.1f} ms ({m_groups / batch:6.1f} ms per image)")
    print(f"one mixed batch     median {m_one:8.1f} ms ({m_one / batch:6.1f} ms per image)")
    print(f"ratio mixed batch/one by one:      {m_one / m_alone:.3f}")
    print(f"ratio mixed batch/batch per style: {m_one / m_groups:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    main(args.rounds, args.batch)
