"""The worker's engine: one base pipeline, trained and sampled on one device.

Plain synchronous code that the worker runs on a single thread of its own,
so the pipeline is never used by two jobs at once. It takes and returns
bytes: the worker does the blob store and queue I/O around it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from diffusers.utils import logging as diffusers_logging
from PIL import Image
from transformers.utils import logging as transformers_logging

from stylebot.engine.generator import GenerationRequest, Generator, LoraWeights
from stylebot.engine.models import load_pipeline
from stylebot.provenance.metadata import OutputMetadata, encode_png
from stylebot.provenance.watermark import embed_watermark
from stylebot.queue.payloads import GenerateJob, TrainSettings
from stylebot.trainer.dataset import prepare_training_image
from stylebot.trainer.lora import TrainingCancelled, train_lora

log = logging.getLogger(__name__)

SAMPLER_NAME = "DDIM"


class JobCancelled(Exception):
    """The job was cancelled between two steps; nothing was produced."""


@dataclass(frozen=True)
class TrainedWeights:
    data: bytes
    steps: int
    final_loss: float
    seconds: float


@dataclass(frozen=True)
class FinishedImage:
    output_id: str
    png: bytes
    seed: int


class StyleEngine:
    def __init__(
        self,
        base_model: str,
        cache_dir: Path,
        *,
        device: str = "auto",
        dtype: str = "auto",
        max_loaded_adapters: int = 8,
    ) -> None:
        self.base_model = base_model
        self.cache_dir = cache_dir
        # A worker logs; progress bars on its stderr would only fill the log.
        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()
        started = time.perf_counter()
        self.pipeline = load_pipeline(base_model, device=device, dtype=dtype)
        log.info("loaded %s in %.1f s", base_model, time.perf_counter() - started)
        self.generator = Generator(self.pipeline, max_loaded_adapters=max_loaded_adapters)

    def train(
        self,
        images: Sequence[bytes],
        trigger: str,
        settings: TrainSettings,
        on_progress: Callable[[int, int, float], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> TrainedWeights:
        pictures = [
            prepare_training_image(Image.open(io.BytesIO(data)), settings.resolution)
            for data in images
        ]
        with tempfile.TemporaryDirectory(dir=self._scratch()) as workdir:
            try:
                outcome = train_lora(
                    self.pipeline,
                    pictures,
                    trigger,
                    settings,
                    Path(workdir),
                    on_progress=on_progress,
                    should_stop=should_stop,
                )
            except TrainingCancelled as exc:
                raise JobCancelled(str(exc)) from exc
            data = outcome.weights_path.read_bytes()
        return TrainedWeights(data, outcome.steps, outcome.final_loss, outcome.seconds)

    def generate(
        self,
        job: GenerateJob,
        lora: bytes | None = None,
        on_step: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[FinishedImage]:
        """Sample the job's images, then watermark and label each before it leaves."""

        def step(done: int, total: int) -> None:
            if should_stop is not None and should_stop():
                raise JobCancelled(f"cancelled at step {done} of {total}")
            if on_step is not None:
                on_step(done, total)

        weights = self._lora_file(job, lora) if lora is not None else None
        prompt = f"{job.trigger}, {job.prompt}" if job.trigger and weights else job.prompt
        request = GenerationRequest(
            prompt=prompt,
            negative_prompt=job.negative_prompt,
            seed=job.seed,
            steps=job.steps,
            guidance=job.guidance,
            width=job.width,
            height=job.height,
            count=len(job.output_ids),
            variation_seed=job.variation_seed,
            variation_strength=job.variation_strength,
        )
        images = self.generator.generate(request, lora=weights, on_step=step)
        lora_hash = hashlib.sha256(lora).hexdigest() if lora is not None else None
        finished = []
        now = datetime.now(UTC)
        for index, (output_id, image) in enumerate(zip(job.output_ids, images, strict=True)):
            seed = job.seed + index
            marked = embed_watermark(image, output_id)
            meta = OutputMetadata(
                output_id=output_id,
                prompt=prompt,
                negative_prompt=job.negative_prompt,
                seed=seed,
                steps=job.steps,
                guidance=job.guidance,
                width=job.width,
                height=job.height,
                sampler=SAMPLER_NAME,
                base_model=Path(self.base_model).name or self.base_model,
                style_name=job.style_name,
                lora_hash=lora_hash,
                created_at=now,
            )
            finished.append(FinishedImage(output_id, encode_png(marked, meta), seed))
        return finished

    def _lora_file(self, job: GenerateJob, data: bytes) -> LoraWeights:
        """LoRA weights as a file (diffusers loads from paths), cached by content."""
        key = hashlib.sha256(data).hexdigest()
        path = self._scratch() / "loras" / f"{key}.safetensors"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            partial.write_bytes(data)
            partial.replace(path)
        # The adapter name changes with the weights, so a retrained style is reloaded.
        return LoraWeights(adapter_name=f"style{job.style_id}_{key[:12]}", path=path)

    def _scratch(self) -> Path:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        return self.cache_dir
