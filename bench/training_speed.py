"""Training speed: the trainer's steps per second against a plain loop that
encodes the images (VAE) and the caption (CLIP) at every step, with the same
model, data, LoRA and resolution (128 px) on the CPU. The plain loop is the
textbook one (torch's default AdamW, plain MSE); the trainer runs as a worker
runs it (min-SNR weighting, its own optimiser choice, progress and checkpoint
checks every step).

Target: the trainer at least 1.1 times as fast.
Run: .venv/bin/python bench/training_speed.py [--steps N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import one_thread, sample_images, tiny_model
from diffusers import DDPMScheduler

from stylebot.engine.models import load_pipeline
from stylebot.queue.payloads import TrainSettings
from stylebot.trainer.borrowed_unet import borrowed_unet, flush_denormals
from stylebot.trainer.conditioning import images_to_tensor
from stylebot.trainer.embeddings import encode_caption
from stylebot.trainer.lora import train_lora

TRIGGER = "sks style"


def plain_loop(pipeline, images, settings: TrainSettings) -> float:  # type: ignore[no-untyped-def]
    """Steps per second of the textbook loop: every step encodes image and caption."""
    unet, vae = pipeline.unet, pipeline.vae
    scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    pixels = images_to_tensor(images, settings.resolution)
    rng = torch.Generator().manual_seed(settings.seed)
    with torch.enable_grad(), flush_denormals(unet.device):
        torch.manual_seed(settings.seed)
        with borrowed_unet(unet, settings.rank) as params:
            optimizer = torch.optim.AdamW(params, lr=settings.learning_rate)
            started = time.perf_counter()
            for _ in range(settings.steps):
                index = torch.randint(0, len(images), (1,), generator=rng)
                with torch.no_grad():
                    latents = vae.encode(pixels[index]).latent_dist.sample(rng)
                    latents = latents * vae.config.scaling_factor
                    caption, _ = encode_caption(pipeline, TRIGGER)
                noise = torch.randn(latents.shape, generator=rng)
                timesteps = torch.randint(0, 1000, (1,), generator=rng)
                noisy = scheduler.add_noise(latents, noise, timesteps)
                prediction = unet(noisy, timesteps, encoder_hidden_states=caption).sample
                loss = F.mse_loss(prediction, noise)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            return settings.steps / (time.perf_counter() - started)


def trainer(pipeline, images, settings: TrainSettings, out: Path) -> float:  # type: ignore[no-untyped-def]
    """Steps per second of `train_lora`, timed from its first step to its last."""
    times: list[float] = []
    train_lora(
        pipeline,
        images,
        TRIGGER,
        settings,
        out,
        on_progress=lambda _s, _t, _l: times.append(time.perf_counter()),
    )
    # From the end of step 1 to the end of the last: the loop alone, like the plain one.
    return (len(times) - 1) / (times[-1] - times[0])


def main(steps: int, rounds: int) -> None:
    one_thread()
    settings = TrainSettings(steps=steps, resolution=128, rank=4, learning_rate=1e-4)
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = load_pipeline(str(tiny_model(Path(tmp))), device="cpu")
        images = sample_images(4)
        ours: list[float] = []
        plain: list[float] = []
        for i in range(rounds):  # interleaved, so background load hits both alike
            plain.append(plain_loop(pipeline, images, settings))
            ours.append(trainer(pipeline, images, settings, Path(tmp) / f"out{i}"))
    best_ours, best_plain = max(ours), max(plain)
    print(f"{steps} steps x {rounds} rounds, 128 px, rank 4, tiny model, CPU, one torch thread")
    for i, (p, o) in enumerate(zip(plain, ours, strict=True), 1):
        print(f"round {i}: plain {p:6.2f} steps/s, trainer {o:6.2f} steps/s, ratio {o / p:.2f}")
    print(f"plain loop (encodes every step)  {best_plain:6.2f} steps/s (best round)")
    print(f"trainer (cached latents/caption) {best_ours:6.2f} steps/s (best round)")
    # Each round runs both back to back, so a round's ratio sees one load.
    ratios = sorted(o / p for p, o in zip(plain, ours, strict=True))
    median = ratios[len(ratios) // 2]
    print(
        f"ratio trainer/plain: {median:.2f} median of rounds, "
        f"{best_ours / best_plain:.2f} best rounds (target: >= 1.1)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    main(args.steps, args.rounds)
