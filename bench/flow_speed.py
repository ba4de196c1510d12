"""FLUX.1 and SD 3.5 on their tiny models, CPU, one torch thread.

Training: `train_flow_lora`'s steps per second against a plain flow-matching loop
that encodes the image (VAE) and the caption (T5 + CLIP) at every step, with the
same model, data, LoRA targets and resolution (128 px).
Generation: a styled 256x256 image in 4 steps through the worker's Generator
(the style's adapter stays loaded) against a plain loop that loads the LoRA
for each request and unloads it after, as a bot without an adapter cache does.

Target: each of ours at least 1.1 times as fast.
Run: .venv/bin/python bench/flow_speed.py [--steps N] [--rounds N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import one_thread, sample_images

from stylebot.engine.families import LORA_TARGET_MODULES, flow_family
from stylebot.engine.generation_request import GenerationRequest, LoraWeights
from stylebot.engine.generator import Generator
from stylebot.engine.models import load_pipeline
from stylebot.engine.tiny_model import write_tiny_model
from stylebot.queue.payloads import TrainSettings
from stylebot.trainer.borrowed_unet import borrowed_unet, flush_denormals
from stylebot.trainer.conditioning import images_to_tensor
from stylebot.trainer.flow_captions import encode_caption_once
from stylebot.trainer.flow_matching import (
    WEIGHTS_NAME,
    _velocity,
    noise_levels,
    train_flow_lora,
)

TRIGGER = "sks style"
REQUEST = GenerationRequest(prompt=f"{TRIGGER}, a lighthouse", steps=4, width=256, height=256)


def plain_training(pipeline, images, settings: TrainSettings) -> float:  # type: ignore[no-untyped-def]
    """Steps per second of the textbook loop: every step encodes image and caption."""
    transformer, vae = pipeline.transformer, pipeline.vae
    family = flow_family(pipeline)
    assert family is not None
    pixels = images_to_tensor(images, settings.resolution)
    rng = torch.Generator().manual_seed(settings.seed)
    shift = float(pipeline.scheduler.config.get("shift", 1.0))
    with torch.enable_grad(), flush_denormals(transformer.device):
        targets = LORA_TARGET_MODULES[family]
        with borrowed_unet(transformer, settings.rank, targets) as params:
            optimizer = torch.optim.AdamW(params, lr=settings.learning_rate)
            started = time.perf_counter()
            for _ in range(settings.steps):
                index = torch.randint(0, len(images), (1,), generator=rng)
                with torch.no_grad():
                    latents = vae.encode(pixels[index]).latent_dist.sample(rng)
                    shift_factor = vae.config.shift_factor or 0.0
                    latents = (latents - shift_factor) * vae.config.scaling_factor
                    conditioning = encode_caption_once(pipeline, TRIGGER)
                noise = torch.randn(latents.shape, generator=rng)
                levels = noise_levels(1, rng, shift=shift, mu=None)
                s = levels.view(-1, 1, 1, 1)
                noisy = (1 - s) * latents + s * noise
                predicted = _velocity(pipeline, noisy, levels, conditioning)
                loss = F.mse_loss(predicted, noise - latents)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            return settings.steps / (time.perf_counter() - started)


def our_training(pipeline, images, settings: TrainSettings, out: Path) -> float:  # type: ignore[no-untyped-def]
    times: list[float] = []
    train_flow_lora(
        pipeline,
        images,
        TRIGGER,
        settings,
        out,
        on_progress=lambda _s, _t, _l: times.append(time.perf_counter()),
    )
    return (len(times) - 1) / (times[-1] - times[0])


def plain_generation(pipeline, lora: Path, count: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds per styled image when every request loads and unloads the LoRA."""
    started = time.perf_counter()
    for seed in range(count):
        pipeline.load_lora_weights(str(lora), adapter_name="plain")
        pipeline(
            REQUEST.prompt,
            num_inference_steps=REQUEST.steps,
            width=REQUEST.width,
            height=REQUEST.height,
            generator=torch.Generator().manual_seed(seed),
        )
        pipeline.delete_adapters(["plain"])
    return (time.perf_counter() - started) / count


def our_generation(generator: Generator, lora: LoraWeights, count: int) -> float:
    started = time.perf_counter()
    for seed in range(count):
        generator.generate(GenerationRequest(**{**REQUEST.__dict__, "seed": seed}), lora=lora)
    return (time.perf_counter() - started) / count


def main(steps: int, rounds: int) -> None:
    one_thread()
    settings = TrainSettings(steps=steps, resolution=128, rank=4, learning_rate=1e-4)
    images = sample_images(4)
    print(f"{steps} steps x {rounds} rounds, 128 px training, 256 px 4-step images, CPU")
    with tempfile.TemporaryDirectory() as tmp:
        for family in ("flux", "sd3"):
            pipeline = load_pipeline(
                str(write_tiny_model(Path(tmp) / family, family=family)), device="cpu"
            )
            plain, ours = [], []
            for i in range(rounds):  # interleaved, so background load hits both alike
                plain.append(plain_training(pipeline, images, settings))
                ours.append(our_training(pipeline, images, settings, Path(tmp) / f"{family}{i}"))
            ratio = sorted(o / p for p, o in zip(plain, ours, strict=True))[rounds // 2]
            print(
                f"{family} training: plain {max(plain):6.2f} steps/s, ours {max(ours):6.2f} "
                f"steps/s, ratio {ratio:.2f} median of rounds (target >= 1.1)"
            )
            lora_file = Path(tmp) / f"{family}0" / WEIGHTS_NAME
            generator = Generator(pipeline)
            weights = LoraWeights(adapter_name="style", path=lora_file)
            our_generation(generator, weights, 1)  # warm-up: the first load
            plain_s, ours_s = [], []
            for _ in range(rounds):
                generator.adapters.activate(None)
                plain_s.append(plain_generation(pipeline, lora_file, 3))
                ours_s.append(our_generation(generator, weights, 3))
            ratio = sorted(p / o for p, o in zip(plain_s, ours_s, strict=True))[rounds // 2]
            print(
                f"{family} generation: plain {min(plain_s) * 1000:7.1f} ms/image, ours "
                f"{min(ours_s) * 1000:7.1f} ms/image, speed-up {ratio:.2f} (target >= 1.1)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    main(args.steps, args.rounds)
