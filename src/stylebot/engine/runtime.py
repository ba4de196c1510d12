"""The worker's engine: one base pipeline, trained and sampled on one device.

Plain synchronous code that the worker runs on a single thread of its own,
so the pipeline is never used by two jobs at once. It takes and returns
bytes: the worker does the blob store and queue I/O around it.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
from diffusers.utils import logging as diffusers_logging
from PIL import Image
from transformers.utils import logging as transformers_logging

from stylebot.config import FEW_STEP_MAX_STEPS
from stylebot.engine.generator import (
    FEW_STEP_GUIDANCE,
    GenerationRequest,
    Generator,
    LoraWeights,
)
from stylebot.engine.lora_files import (
    StyleCard,
    export_model_hash,
    kohya_lora_file,
    model_label,
)
from stylebot.engine.models import load_pipeline, model_family
from stylebot.engine.worker_cache import DEFAULT_CACHE_MAX_BYTES, BlobCache
from stylebot.log_privacy import route_model_library_logs
from stylebot.provenance.a1111_hashes import (
    MODEL_SHORTHASH_LEN,
    addnet_hash,
    checkpoint_legacy_hash,
    checkpoint_sha256,
)
from stylebot.provenance.content_credentials import finish_output_png
from stylebot.provenance.metadata import OutputMetadata
from stylebot.provenance.signing import SigningIdentity
from stylebot.provenance.watermark import embed_watermark
from stylebot.queue.payloads import (
    GenerateJob,
    TrainingPreview,
    TrainJob,
    TrainSettings,
    ValidationPoint,
    preview_output_id,
)
from stylebot.trainer.borrowed_unet import DeviceSharing
from stylebot.trainer.checkpoints import TrainingCheckpoint
from stylebot.trainer.dataset import DEFAULT_MAX_PIXELS, open_stored_png, prepare_upload
from stylebot.trainer.embeddings import (
    TRAINING_TOKEN,
    StyleEmbedding,
    style_caption,
)
from stylebot.trainer.lora import TrainingCancelled, train_lora

log = logging.getLogger(__name__)

# AUTOMATIC1111's names for diffusers' schedulers, for the PNG's "Sampler" field.
SAMPLER_NAMES = {
    "DDIMScheduler": "DDIM",
    "PNDMScheduler": "PLMS",
    "LMSDiscreteScheduler": "LMS",
    "EulerDiscreteScheduler": "Euler",
    "EulerAncestralDiscreteScheduler": "Euler a",
    "DPMSolverMultistepScheduler": "DPM++ 2M",
    "DPMSolverSinglestepScheduler": "DPM++ SDE",
    "HeunDiscreteScheduler": "Heun",
    "UniPCMultistepScheduler": "UniPC",
    "LCMScheduler": "LCM",
}


def sampler_name(scheduler: object) -> str:
    """The sampler an image was made with, as A1111 names it (else the class name)."""
    name = type(scheduler).__name__
    return SAMPLER_NAMES.get(name, name.removesuffix("Scheduler"))


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
    # Held-out loss with the LoRA and with the base model over the run.
    validation: tuple[ValidationPoint, ...] = ()
    # The same LoRA in kohya's layout with metadata (lora_files), for /style
    # export; None when converting it failed (logged; the style still works).
    export_data: bytes | None = None
    # The style token's embedding (safetensors, A1111/diffusers layout) when the
    # method trains one; `data` is then empty if no LoRA trained.
    embedding_data: bytes | None = None


@dataclass(frozen=True)
class TrainingPreviews:
    """Where a training run's preview images go (see `TrainSettings.preview_every_steps`).

    `deliver(step, preview, image)` runs on the device thread, inside the
    training loop: it should hand the image on, not wait for storage.
    """

    job_id: str
    deliver: Callable[[int, TrainingPreview, FinishedImage], None]


# Small and quick: a preview shows where the style is going, and it holds up
# the training run while it renders.
PREVIEW_SIZE = 256
PREVIEW_STEPS = 12
PREVIEW_GUIDANCE = 7.5
# Styles whose export hash generation remembers (one conversion each, then free).
_EXPORT_HASHES_KEPT = 64


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


def generation_batch_key(job: GenerateJob, *, mixed_styles: bool = False) -> tuple[object, ...]:
    """Jobs with equal keys can share one pipeline call: same style, steps, guidance, size,
    and all with a negative prompt or all without.

    With `mixed_styles` the style is left out: jobs in different styles share a
    call through per-sample adapters (`StyleEngine.generate_mixed`).
    """
    # SDXL (`force_zeros_for_empty_prompt`) conditions a request without a
    # negative prompt on zeros, but once any request in a call has one, every
    # request's negative is encoded text, "" included: its image would then
    # depend on its batch-mates.
    shape = (job.steps, job.guidance, job.width, job.height, bool(job.negative_prompt))
    if mixed_styles:
        # A textual-inversion embedding changes the text encoder for the whole call.
        return (job.embedding_key, job.embedding_token, *shape)
    return (job.lora_key, job.trigger, job.style_id, *shape)


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
        family: str = "auto",
        config: str | None = None,
        few_step: bool | None = None,
        lora_hotswap: bool = True,
        lora_hotswap_rank: int = 16,
        max_image_pixels: int = DEFAULT_MAX_PIXELS,
        cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES,
    ) -> None:
        # family: a single-file checkpoint's (auto: from its keys); config: the
        # folder or hub id of its component configs (None: diffusers' guess);
        # few_step: a turbo model's step cap (None: from the model's name). See
        # engine.models.
        self.base_model = base_model
        self.cache_dir = cache_dir
        # Training images bigger than this are refused before they are decoded.
        self.max_image_pixels = max_image_pixels
        # Style weights and embeddings as files, bounded, and dropped when revoked.
        self.cache = BlobCache(cache_dir, cache_max_bytes)
        # A worker logs; progress bars on its stderr would only fill the log.
        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()
        # Their lines through our handlers: job ids on them, user text kept out.
        route_model_library_logs()
        started = time.perf_counter()
        self.pipeline = load_pipeline(
            base_model, device=device, dtype=dtype, family=family, config=config
        )
        log.info("loaded %s in %.1f s", base_model, time.perf_counter() - started)
        self.generator = Generator(
            self.pipeline,
            max_loaded_adapters=max_loaded_adapters,
            few_step=few_step,
            lora_hotswap=lora_hotswap,
            hotswap_rank=lora_hotswap_rank,
        )
        # None: outputs carry the watermark and PNG metadata but no C2PA manifest.
        self.signing = signing
        # sha256 of a style's weights -> its export's hash (see _export_hash).
        self._export_hashes: OrderedDict[str, str] = OrderedDict()
        # A single-file checkpoint's hashes (None: a folder or hub id), for the images'
        # "Model hash" and the exports' ss_*_model_hash; hashed now, while the file is
        # in the page cache, not during the first job.
        path = Path(base_model)
        self.checkpoint_sha256 = (
            checkpoint_sha256(path, self._scratch()) if path.is_file() else None
        )
        self.model_hash = (
            self.checkpoint_sha256[:MODEL_SHORTHASH_LEN] if self.checkpoint_sha256 else None
        )

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
        export_for: TrainJob | None = None,
        previews: TrainingPreviews | None = None,
    ) -> TrainedWeights:
        """Train a style's LoRA; `on_checkpoint(state, step)` gets the run's state as
        bytes now and then, which `resume_from` continues after a crash. A
        checkpoint from other settings (or unreadable) is ignored, with a log line:
        training again from the start is slower but always right. The result
        also holds the kohya-layout export, described from `export_for`."""
        checkpoint = _usable_checkpoint(resume_from, settings)
        pictures = [
            # Uncropped: the trainer fits each image to its aspect-ratio bucket.
            # Only the PNGs the front end stored: no other decoder, no pixel bomb.
            prepare_upload(open_stored_png(data, self.max_image_pixels), settings.resolution)
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
                    on_progress=self._with_previews(
                        on_progress,
                        # The token in training, so previews show the embedding too.
                        style_caption(
                            trigger, TRAINING_TOKEN if settings.method != "lora" else None
                        ),
                        settings,
                        previews,
                    ),
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
            data = outcome.weights_path.read_bytes() if outcome.weights_path else b""
            embedding = outcome.embedding_path.read_bytes() if outcome.embedding_path else None
        return TrainedWeights(
            data,
            outcome.steps,
            outcome.final_loss,
            outcome.seconds,
            outcome.resumed_from,
            outcome.validation,
            export_data=(
                self._kohya_export(data, trigger, settings, export_for, len(images))
                if data
                else None
            ),
            embedding_data=embedding,
        )

    def unload_blobs(self, keys: Sequence[str]) -> int:
        """Revoked blobs (deleted styles): their LoRA adapters and embeddings leave the
        pipeline's memory (the cache files are named by blob key). Device thread only."""
        return self.generator.unload_files(frozenset(keys))

    def store_embedding(self, key: str, data: bytes) -> None:
        """Keep a style's embedding (blob `key`) where generation finds it by key."""
        self.cache.store("embeddings", key, data)

    def _embedding(self, job: GenerateJob) -> StyleEmbedding | None:
        if not job.embedding_key or not job.embedding_token:
            return None
        path = self.cache.use("embeddings", job.embedding_key)
        if path is None:
            raise FileNotFoundError(
                f"embedding {job.embedding_key} was not stored before generation (store_embedding)"
            )
        return StyleEmbedding(job.embedding_token, path)

    def _kohya_export(
        self,
        weights: bytes,
        trigger: str,
        settings: TrainSettings,
        job: TrainJob | None,
        image_count: int,
    ) -> bytes | None:
        """The LoRA as AUTOMATIC1111 / ComfyUI / diffusers load it, with its metadata."""
        # A single-file pipeline has no name of its own: the file's, as sd-scripts writes.
        trained_on = (
            Path(self.base_model).name if self.checkpoint_sha256 else model_label(self.pipeline)
        )
        recorded = Path(job.base_model).name if job is not None and job.base_model else ""
        if job is not None and recorded and recorded != Path(trained_on).name:
            # The job id, not the style's name: no job argument goes to a log.
            log.warning(
                "style of job %s was recorded for base model %s but trained on %s",
                job.job_id,
                job.base_model,
                trained_on,
            )
        card = StyleCard(
            style_name=job.style_name if job is not None else "",
            trigger=trigger,
            licence=job.licence if job is not None else "",
            consent_id=job.consent_id if job is not None else None,
            base_model=trained_on,
            base_model_sha256=self.checkpoint_sha256 or "",
            base_model_legacy_hash=(
                checkpoint_legacy_hash(Path(self.base_model)) if self.checkpoint_sha256 else ""
            ),
        )
        try:
            return kohya_lora_file(
                weights,
                card,
                settings,
                family=model_family(self.pipeline),
                prediction_type=self.pipeline.scheduler.config.get("prediction_type", "epsilon"),
                trained_at=datetime.now(UTC),
                image_count=image_count,
                unet_config=self.pipeline.unet.config,
            )
        except Exception:  # the style itself is fine; only its export is missing
            log.exception(
                "could not write the kohya-layout export of job %s's style",
                job.job_id if job is not None else "-",
            )
            return None

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

    def generate_mixed(
        self,
        jobs: Sequence[GenerateJob],
        loras: Sequence[bytes | None],
        on_step: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[list[FinishedImage]]:
        """Jobs with equal steps, guidance and size, each in its own style (`loras[i]`,
        None: the base model), in one pipeline call (`Generator.generate_mixed`)."""
        weights = [
            self._lora_file(job, lora) if lora is not None else None
            for job, lora in zip(jobs, loras, strict=True)
        ]
        requests = [self._request(job, w) for job, w in zip(jobs, weights, strict=True)]
        batches = self.generator.generate_mixed(
            list(zip(requests, weights, strict=True)), on_step=_stepper(on_step, should_stop)
        )
        return [
            self._finish(job, request.prompt, images, lora)
            for job, request, images, lora in zip(jobs, requests, batches, loras, strict=True)
        ]

    @property
    def device_type(self) -> str:
        """Where the pipeline runs: "cuda", "cpu", "mps", ..."""
        return str(self.pipeline.device.type)

    def _request(self, job: GenerateJob, weights: LoraWeights | None) -> GenerationRequest:
        embedding = self._embedding(job)
        # Other styles' tokens in the text are harmless: only the job's own reaches
        # the text encoders (GenerationRequest.embedding, engine.own_tokens).
        prompt = job.prompt
        if embedding is not None or (job.trigger and weights):
            caption = style_caption(job.trigger or "", embedding.token if embedding else None)
            prompt = f"{caption}, {prompt}"
        return GenerationRequest(
            prompt=prompt,
            embedding=embedding,
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
        lora_hash = lora_file_hash = None
        if lora is not None:
            lora_hash = hashlib.sha256(lora).hexdigest()
            lora_file_hash = self._export_hash(lora, lora_hash)
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
                # What was sampled: a few-step model caps the steps asked for.
                steps=self.generator.sampled_steps(job.steps),
                guidance=self.generator.sampled_guidance(job.guidance),
                width=job.width,
                height=job.height,
                sampler=sampler_name(self.pipeline.scheduler),
                base_model=Path(self.base_model).name or self.base_model,
                style_name=job.style_name,
                lora_hash=lora_hash,
                created_at=now,
                lora_file_hash=lora_file_hash,
                model_hash=self.model_hash,
            )
            png = finish_output_png(marked, meta, self.signing)
            finished.append(FinishedImage(output_id, png, seed))
        return finished

    def _export_hash(self, lora: bytes, key: str) -> str:
        """The hash A1111 gives the file `/style export` hands out for these weights
        (sha256 `key`): the kohya export's (made at training end from the same
        weights on this model), or, when no export can be made, the weights' own."""
        cache = self._export_hashes
        if key not in cache:
            try:
                cache[key] = export_model_hash(
                    lora,
                    family=model_family(self.pipeline),
                    unet_config=self.pipeline.unet.config,
                )
            except Exception:  # as _kohya_export: no export, so the download is `lora`
                log.warning("no kohya export for weights %s: naming them as they are", key[:12])
                cache[key] = addnet_hash(lora)
            if len(cache) > _EXPORT_HASHES_KEPT:
                cache.popitem(last=False)
        cache.move_to_end(key)
        return cache[key]

    def _lora_file(self, job: GenerateJob, data: bytes) -> LoraWeights:
        """LoRA weights as a file (diffusers loads from paths), cached by content."""
        key = hashlib.sha256(data).hexdigest()  # the blob key: revocations name it
        path = self.cache.store("loras", key, data)
        # The adapter name changes with the weights, so a retrained style is reloaded.
        return LoraWeights(adapter_name=f"style{job.style_id}_{key[:12]}", path=path)

    def _with_previews(
        self,
        on_progress: Callable[[int, int, float], None] | None,
        trigger: str,
        settings: TrainSettings,
        previews: TrainingPreviews | None,
    ) -> Callable[[int, int, float], None] | None:
        """`on_progress`, plus a preview every `settings.preview_every_steps` steps."""
        every = settings.preview_every_steps
        if previews is None or every <= 0:
            return on_progress

        def progress(step: int, total: int, loss: float) -> None:
            if on_progress is not None:
                on_progress(step, total, loss)
            if step % every == 0 and step < total:  # the last step's image is the style itself
                try:
                    preview, image = self._render_preview(previews.job_id, trigger, settings, step)
                except Exception:  # a preview is a courtesy: it never fails the run
                    log.exception("training preview at step %d failed; training goes on", step)
                    return
                previews.deliver(step, preview, image)

        return progress

    def _render_preview(
        self, job_id: str, trigger: str, settings: TrainSettings, step: int
    ) -> tuple[TrainingPreview, FinishedImage]:
        """One small image with the LoRA as trained so far, finished like any output.

        Called between two training steps: the training adapter is the active
        one, so the pipeline is called directly (the Generator would switch
        adapters), with the UNet in eval mode and back to training after.
        """
        unet = self.pipeline.unet
        was_training = unet.training
        job = GenerateJob(
            job_id=job_id,
            prompt=trigger,
            negative_prompt="",
            seed=settings.seed,
            # A few-step (turbo) model blurs with more steps than its preset.
            steps=min(PREVIEW_STEPS, FEW_STEP_MAX_STEPS)
            if self.generator.few_step
            else PREVIEW_STEPS,
            # ... and is distilled without classifier-free guidance.
            guidance=FEW_STEP_GUIDANCE if self.generator.few_step else PREVIEW_GUIDANCE,
            width=PREVIEW_SIZE,
            height=PREVIEW_SIZE,
            output_ids=(preview_output_id(job_id, step),),
        )
        unet.eval()
        try:
            with torch.no_grad():
                result = self.pipeline(
                    prompt=trigger,
                    num_inference_steps=job.steps,
                    guidance_scale=job.guidance,
                    width=job.width,
                    height=job.height,
                    generator=torch.Generator(device="cpu").manual_seed(job.seed),
                    output_type="pil",
                )
        finally:
            if was_training:
                unet.train()
        [image] = self._finish(job, trigger, result.images[:1], None)
        preview = TrainingPreview(
            output_id=image.output_id,
            blob_key="",  # the worker fills it in once it has stored the image
            prompt=trigger,
            seed=job.seed,
            steps=job.steps,
            guidance=job.guidance,
            width=job.width,
            height=job.height,
        )
        return preview, image

    def _scratch(self) -> Path:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        return self.cache_dir
