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
from stylebot.provenance.content_credentials import finish_output_png
from stylebot.provenance.metadata import OutputMetadata
from stylebot.provenance.signing import SigningIdentity
from stylebot.provenance.watermark import embed_watermark
from stylebot.queue.payloads import GenerateJob, TrainSettings
from stylebot.trainer.checkpoints import TrainingCheckpoint
from stylebot.trainer.dataset import prepare_training_image
from stylebot.trainer.lora import DeviceSharing, TrainingCancelled, train_lora

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
    # Steps done by an earlier, interrupted attempt that this one continued.
    resumed_from: int = 0


@dataclass(frozen=True)
class FinishedImage:
    output_id: str
    png: bytes
    seed: int


def _usable_checkpoint(data: bytes | None, settings: TrainSettings) -> TrainingCheckpoint | None:
    if data is None:
        return None
    try:
        checkpoint = TrainingCheckpoint.from_bytes(data)
    except Exception:  # a truncated or foreign blob: start over rather than fail the job
        log.exception("unreadable training checkpoint ignored; training from step 0")
        return None
    if not checkpoint.continues(settings):
        log.warning("checkpoint at step %d is from other settings; ignored", checkpoint.step)
        return None
    return checkpoint


def generation_batch_key(job: GenerateJob) -> tuple[object, ...]:
    """Jobs with equal keys can share one pipeline call: same style, steps, guidance, size."""
    return (job.lora_key, job.trigger, job.style_id, job.steps, job.guidance, job.width, job.height)


def _stepper(
    on_step: Callable[[int, int], None] | None, should_stop: Callable[[], bool] | None
) -> Callable[[int, int], None]:
    def step(done: int, total: int) -> None:
        if should_stop is not None and should_stop():
            raise JobCancelled(f"cancelled at step {done} of {total}")
        if on_step is not None:
            on_step(done, total)

    return step


class StyleEngine:
    def __init__(
        self,
        base_model: str,
        cache_dir: Path,
        *,
        device: str = "auto",
        dtype: str = "auto",
        max_loaded_adapters: int = 8,
        signing: SigningIdentity | None = None,
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
        # None: outputs carry the watermark and PNG metadata but no C2PA manifest.
        self.signing = signing

    def train(
        self,
        images: Sequence[bytes],
        trigger: str,
        settings: TrainSettings,
        on_progress: Callable[[int, int, float], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        *,
        resume_from: bytes | None = None,
        on_checkpoint: Callable[[bytes, int], None] | None = None,
        device_sharing: DeviceSharing | None = None,
    ) -> TrainedWeights:
        """Train a style's LoRA; `on_checkpoint(state, step)` gets the run's state as
        bytes now and then, which `resume_from` continues after a crash. A
        checkpoint from other settings (or unreadable) is ignored, with a log line:
        training again from the start is slower but always right."""
        checkpoint = _usable_checkpoint(resume_from, settings)
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
                    resume_from=checkpoint,
                    on_checkpoint=(
                        None
                        if on_checkpoint is None
                        else lambda state: on_checkpoint(state.to_bytes(), state.step)
                    ),
                    device_sharing=device_sharing,
                )
            except TrainingCancelled as exc:
                raise JobCancelled(str(exc)) from exc
            data = outcome.weights_path.read_bytes()
        return TrainedWeights(
            data, outcome.steps, outcome.final_loss, outcome.seconds, outcome.resumed_from
        )

    def generate(
        self,
        job: GenerateJob,
        lora: bytes | None = None,
        on_step: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[FinishedImage]:
        """Sample the job's images, then watermark and label each before it leaves."""
        weights = self._lora_file(job, lora) if lora is not None else None
        request = self._request(job, weights)
        images = self.generator.generate(
            request, lora=weights, on_step=_stepper(on_step, should_stop)
        )
        return self._finish(job, request.prompt, images, lora)

    def generate_batch(
        self,
        jobs: Sequence[GenerateJob],
        lora: bytes | None = None,
        on_step: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[list[FinishedImage]]:
        """Several jobs with one style and equal `generation_batch_key` in one pipeline call.

        Each image starts from its own seed's noise, as in `generate` (see
        `Generator.generate_batch` for how close the two are).
        """
        if len(jobs) == 1:
            return [self.generate(jobs[0], lora, on_step, should_stop)]
        weights = self._lora_file(jobs[0], lora) if lora is not None else None
        requests = [self._request(job, weights) for job in jobs]
        batches = self.generator.generate_batch(
            requests, lora=weights, on_step=_stepper(on_step, should_stop)
        )
        return [
            self._finish(job, request.prompt, images, lora)
            for job, request, images in zip(jobs, requests, batches, strict=True)
        ]

    @staticmethod
    def _request(job: GenerateJob, weights: LoraWeights | None) -> GenerationRequest:
        prompt = f"{job.trigger}, {job.prompt}" if job.trigger and weights else job.prompt
        return GenerationRequest(
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

    def _finish(
        self, job: GenerateJob, prompt: str, images: Sequence[Image.Image], lora: bytes | None
    ) -> list[FinishedImage]:
        """Watermark and label each image: nothing leaves the worker without both."""
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
            png = finish_output_png(marked, meta, self.signing)
            finished.append(FinishedImage(output_id, png, seed))
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
