"""Batching: eight same-style requests in one pipeline call, against the same
eight made one by one, on the tiny model on the CPU (256x256, 4 steps).

Target: never slower on the CPU (the gain is a GPU gain). Each image keeps its
own seed's noise; the batched images match the one-by-one ones to within one
8-bit level (see tests/integration/engine/test_generator.py).
Run: .venv/bin/python bench/batching.py [--rounds N] [--batch 8]
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

from _common import median_ms, one_thread, timed, tiny_model

from stylebot.engine import GenerationRequest, Generator, load_pipeline

REQUEST = GenerationRequest(prompt="a lighthouse", steps=4, width=256, height=256)


def main(rounds: int, batch: int) -> None:
    one_thread()
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = load_pipeline(str(tiny_model(Path(tmp))), device="cpu")
        generator = Generator(pipeline)
        requests = [replace(REQUEST, seed=i, prompt=f"a lighthouse {i}") for i in range(batch)]
        generator.generate(REQUEST)  # warm-up
        one_by_one: list[float] = []
        batched: list[float] = []
        for _ in range(rounds):
            one_by_one.append(timed(lambda: [generator.generate(r) for r in requests]))
            batched.append(timed(lambda: generator.generate_batch(requests)))

    alone, together = median_ms(one_by_one), median_ms(batched)
    print(
        f"rounds: {rounds}, {batch} requests, tiny model, 256x256, 4 steps, CPU, one torch thread"
    )
    print(f"one by one   median {alone:8.1f} ms ({alone / batch:6.1f} ms per image)")
    print(f"one batch    median {together:8.1f} ms ({together / batch:6.1f} ms per image)")
    print(f"ratio batched/one by one: {together / alone:.3f} (target: <= 1.0)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    main(args.rounds, args.batch)
