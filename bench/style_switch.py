"""Style switch: generations alternating between two cached styles, against
generations that keep one style; and a style that is not cached, loaded from
disk after unloading the oldest against hot-swapped into the oldest's slot.

Tiny model on the CPU, 128x128, 4 steps. Target: alternating at most 5% slower.
Run: .venv/bin/python bench/style_switch.py [--runs N]
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

from _common import median_ms, one_thread, sample_images, timed, tiny_model

from stylebot.engine.generation_request import GenerationRequest, LoraWeights
from stylebot.engine.generator import Generator
from stylebot.engine.models import BasePipeline, load_pipeline
from stylebot.queue.payloads import TrainSettings
from stylebot.trainer.lora import train_lora

REQUEST = GenerationRequest(prompt="sks style, a harbour", seed=1, steps=4, width=128, height=128)


def switches(
    pipeline: BasePipeline, styles: list[LoraWeights], *, hotswap: bool, count: int
) -> tuple[list[float], list[float]]:
    """Generations that each bring a style into a full one-slot cache, and
    (interleaved, as their baseline) generations that keep the style."""
    generator = Generator(pipeline, max_loaded_adapters=1, lora_hotswap=hotswap)
    generator.generate(REQUEST, lora=styles[1])  # fills the slot
    switching: list[float] = []
    keeping: list[float] = []
    for i in range(count):
        switching.append(timed(lambda i=i: generator.generate(REQUEST, lora=styles[i % 2])))
        keeping.append(timed(lambda i=i: generator.generate(REQUEST, lora=styles[i % 2])))
    assert generator.adapters.hotswaps == (count if hotswap else 0)
    for slot in generator.adapters.adapter_slots.values():
        pipeline.delete_adapters([slot])
    return switching, keeping


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

        for slot in generator.adapters.adapter_slots.values():
            pipeline.delete_adapters([slot])

        # A style not in the cache, with the cache full (one slot, alternating
        # styles): unload the oldest and load from disk, against a hot-swap of
        # the new weights into its slot. Both read the file. The two caches
        # take turns on the one pipeline (their slots have the same names).
        cold: list[float] = []
        hot: list[float] = []
        kept: list[float] = []
        for _ in range(max(2, runs // 4)):
            for hotswap, into in ((False, cold), (True, hot)):
                switching, keeping = switches(pipeline, styles, hotswap=hotswap, count=4)
                into.extend(switching)
                kept.extend(keeping)

    base, switch = median_ms(one_style), median_ms(alternating)
    load, swap, same = median_ms(cold), median_ms(hot), median_ms(kept)
    print(f"runs: {runs}, tiny model, 128x128, 4 steps, CPU, one torch thread")
    print(f"one style                      median {base:7.1f} ms")
    print(f"two cached styles, alt.        median {switch:7.1f} ms")
    print(f"ratio alternating/one style:   {switch / base:.3f} (target: <= 1.05)")
    print("a style not cached, cache full (one slot):")
    print(f"  same style again (baseline)  median {same:7.1f} ms")
    print(f"  unload + load from disk      median {load:7.1f} ms (switch {load - same:6.1f} ms)")
    print(f"  hot-swap into the slot       median {swap:7.1f} ms (switch {swap - same:6.1f} ms)")
    print(f"ratio cold load/same style:    {load / same:.3f}")
    print(f"ratio hot-swap/same style:     {swap / same:.3f}")
    print(f"ratio hot-swap/cold load:      {swap / load:.3f}")
    if load > same:
        print(
            f"ratio switch cost, hot-swap/unload+load: {max(swap - same, 0.0) / (load - same):.3f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    main(parser.parse_args().runs)
