"""The worker's engine: one base pipeline, trained and sampled on one device.

Plain synchronous code that the worker runs on a single thread of its own,
so the pipeline is never used by two jobs at once. It takes and returns
bytes: the worker does the blob store and queue I/O around it.

Over 400 lines because `StyleEngine` is the worker's one entry to the device:
training (either trainer), generation and finishing share its pipeline, caches
and signing identity; the family-specific parts live in their own modules.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from diffusers.utils import logging as diffusers_logging
from PIL import Image
from transformers.utils import logging as transformers_logging

from stylebot.bot.core.fingerprints import fingerprint_of_image
from stylebot.engine.base_quantization import prepare_base
from stylebot.engine.captioner import CaptionerSlot
from stylebot.engine.diffusers_classes import StableDiffusionPipeline, StableDiffusionXLPipeline
from stylebot.engine.families import FlowTrainsLoraOnly, family_variant
from stylebot.engine.generation_request import GenerationRequest, LoraWeights
from stylebot.engine.generator import Generator
from stylebot.engine.image_modes import job_picture_and_mask
from stylebot.engine.image_similarity import similar_pairs
from stylebot.engine.models import load_pipeline, model_family, sampler_name
from stylebot.engine.style_exports import StyleExports
from stylebot.engine.style_metrics import StyleMeasurer
from stylebot.engine.training_previews import (
    EncodedPrompt,
    TrainingPreviews,
    draw_preview,
    encode_preview_prompt,
    preview_guidance,
    preview_job,
    preview_record,
    with_previews,
)
from stylebot.engine.training_report import RunRecorder
from stylebot.engine.worker_cache import (
    DEFAULT_CACHE_MAX_BYTES,
    BlobCache,
    CachedBlob,
    CacheKind,
    RevokedBlobError,
)
from stylebot.log_privacy import route_model_library_logs
from stylebot.provenance.a1111_hashes import (
    MODEL_SHORTHASH_LEN,
    checkpoint_sha256,
)
from stylebot.provenance.content_credentials import finish_output_png
from stylebot.provenance.metadata import OutputMetadata
from stylebot.provenance.signing import SigningIdentity
from stylebot.provenance.watermark import embed_watermark
from stylebot.queue.payloads import (
    GenerateJob,
    StyleMetrics,
    TrainedBase,
    TrainingPreview,
    TrainJob,
    TrainSettings,
    ValidationPoint,
)
from stylebot.style_tokens import TRAINING_TOKEN
from stylebot.trainer.adapter_run import TrainingCancelled
from stylebot.trainer.borrowed_unet import DeviceSharing
from stylebot.trainer.checkpoints import checkpoint_files, usable_checkpoint
from stylebot.trainer.dataset import DEFAULT_MAX_PIXELS, open_stored_png, prepare_upload
from stylebot.trainer.embeddings import StyleEmbedding, style_caption
from stylebot.trainer.flow_matching import train_flow_lora
from stylebot.trainer.lora import train_lora

log = logging.getLogger(__name__)


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
    # The loss curve and previews as one PNG (training_report); None if not drawn.
    report_png: bytes | None = None
    # Measured with the configured CLIP model (style_metrics); None without one.
    metrics: StyleMetrics | None = None
    # The base model it trained on, with its family and licence (StyleExports).
    base: TrainedBase | None = None


@dataclass(frozen=True)
class FinishedImage:
    output_id: str
    png: bytes
    seed: int
    # The perceptual hash of the PNG's pixels (stylebot.bot.core.fingerprints), taken
    # from the image in memory: the front end records it without decoding the PNG.
    fingerprint: str


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
        quantization: str = "none",
        few_step: bool | None = None,
        lora_hotswap: bool = True,
        lora_hotswap_rank: int = 16,
        max_image_pixels: int = DEFAULT_MAX_PIXELS,
        cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES,
        clip_model: str = "",
        captioner: str = "",
        controlnets: Mapping[str, str] | None = None,
        depth_estimator: str = "",
    ) -> None:
        # family: a single-file checkpoint's (auto: from its keys); config: the
        # folder or hub id of its component configs (None: diffusers' guess);
        # few_step: a turbo model's step cap (None: from the model's name). See
        # engine.models. quantization: the base transformer's weights (auto, none,
        # int8; see engine.base_quantization).
        self.base_model = base_model
        self.cache_dir = cache_dir
        # Training images bigger than this are refused before they are decoded.
        self.max_image_pixels = max_image_pixels
        # Measures finished styles with a CLIPModel checkpoint ("": none).
        self.measurer = StyleMeasurer(clip_model)
        # Proposes captions for waiting images (a Florence-2 or BLIP checkpoint; "": none).
        self.captioner = CaptionerSlot(captioner)
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
        # Where the pipeline runs ("cuda", "cpu", "mps"); it stays there. Kept, not asked:
        # diffusers' `pipeline.device` inspects the pipeline's signature each time (1.1
        # ms here), and every generation asks (`job_bodies.mixed_style_batches`).
        self.device_type = str(self.pipeline.device.type)
        # sd15 ... flux-dev: what doctor and the exports name; the base's weights
        # in int8 when the family and the GPU call for it.
        self.variant = family_variant(self.pipeline) or model_family(self.pipeline)
        self.quantization = prepare_base(
            self.pipeline, quantization, self.variant, self.device_type
        )
        self.generator = Generator(
            self.pipeline,
            max_loaded_adapters=max_loaded_adapters,
            few_step=few_step,
            lora_hotswap=lora_hotswap,
            hotswap_rank=lora_hotswap_rank,
            controlnets=controlnets,  # /sketch's, by kind (engine.sketch_control)
            depth_estimator=depth_estimator,
        )
        # None: outputs carry the watermark and PNG metadata but no C2PA manifest.
        self.signing = signing
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
        self.exports = StyleExports(self.pipeline, base_model, self.checkpoint_sha256)

    def train(
        self,
        images: Sequence[bytes],
        trigger: str,
        settings: TrainSettings,
        on_progress: Callable[[int, int, float], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        *,
        resume_from: Path | None = None,
        on_checkpoint: Callable[[Path, int], None] | None = None,
        device_sharing: DeviceSharing | None = None,
        export_for: TrainJob | None = None,
        previews: TrainingPreviews | None = None,
        captions: Sequence[str] = (),
    ) -> TrainedWeights:
        """Train a style's LoRA; `on_checkpoint(file, step)` gets the run's state in a
        file now and then (read it before returning: the file is reused), which
        `resume_from` (such a file) continues after a crash. A
        checkpoint from other settings (or unreadable) is ignored, with a log line:
        training again from the start is slower but always right. The result
        also holds the kohya-layout export, described from `export_for`. `captions`:
        each image's own ("" or none: the trigger alone), after the trigger."""
        pipeline = self.pipeline
        flow = not isinstance(pipeline, StableDiffusionPipeline | StableDiffusionXLPipeline)
        if flow and settings.method != "lora":
            raise FlowTrainsLoraOnly(model_family(pipeline), settings.method)
        checkpoint = usable_checkpoint(resume_from, settings)
        record = RunRecorder()
        pictures = [
            # Uncropped: the trainer fits each image to its aspect-ratio bucket.
            # Only the PNGs the front end stored: no other decoder, no pixel bomb.
            prepare_upload(open_stored_png(data, self.max_image_pixels), settings.resolution)
            for data in images
        ]
        # The token in training, so previews show the embedding too.
        preview_caption = style_caption(
            trigger, TRAINING_TOKEN if settings.method != "lora" else None
        )
        # FLUX.1 / SD 3.5 runs release their text encoders: the prompt is encoded first.
        encoded = (
            encode_preview_prompt(
                pipeline, preview_caption, preview_guidance(self.generator.few_step)
            )
            if flow and previews is not None and settings.preview_every_steps > 0
            else None
        )
        progress = with_previews(
            record.on_progress(on_progress),
            settings,
            record.previews_to(previews),
            lambda job_id, step: self._render_preview(
                job_id, preview_caption, settings, step, encoded
            ),
        )
        with tempfile.TemporaryDirectory(dir=self._scratch()) as workdir:
            try:
                if not isinstance(pipeline, StableDiffusionPipeline | StableDiffusionXLPipeline):
                    # FLUX.1 / SD 3.5: no device sharing yet (trainer.flow_matching).
                    outcome = train_flow_lora(
                        pipeline,
                        pictures,
                        style_caption(trigger, None),
                        settings,
                        Path(workdir),
                        on_progress=progress,
                        should_stop=should_stop,
                        resume_from=checkpoint,
                        on_checkpoint=checkpoint_files(on_checkpoint, Path(workdir)),
                        captions=captions,
                    )
                else:
                    outcome = train_lora(
                        pipeline,
                        pictures,
                        trigger,
                        settings,
                        Path(workdir),
                        on_progress=progress,
                        should_stop=should_stop,
                        resume_from=checkpoint,
                        on_checkpoint=checkpoint_files(on_checkpoint, Path(workdir)),
                        device_sharing=device_sharing,
                        captions=captions,
                    )
            except TrainingCancelled as exc:
                raise JobCancelled(str(exc)) from exc
            data = outcome.weights_path.read_bytes() if outcome.weights_path else b""
            metrics = self.measurer.measure(
                self.generator, outcome.weights_path, trigger, settings, pictures
            )
            embedding = outcome.embedding_path.read_bytes() if outcome.embedding_path else None
        return TrainedWeights(
            data,
            outcome.steps,
            outcome.final_loss,
            outcome.seconds,
            outcome.resumed_from,
            outcome.validation,
            export_data=(
                self.exports.kohya_export(data, trigger, settings, export_for, len(images))
                if data
                else None
            ),
            embedding_data=embedding,
            report_png=record.report_png(outcome.validation),
            metrics=metrics,
            base=self.exports.trained_base,
        )

    def unload_blobs(self, keys: Sequence[str]) -> int:
        """Revoked blobs (deleted styles): their LoRA adapters and embeddings leave the
        pipeline's memory (the cache files are named by blob key). Device thread only."""
        return self.generator.unload_files(frozenset(keys))

    def _source(self, job: GenerateJob) -> bytes | None:
        """The picture a restyle starts from, as stored (None: text-to-image)."""
        return self._stored("sources", job.source_key)

    def _stored(self, kind: CacheKind, key: str | None) -> bytes | None:
        if not key:
            return None
        path = self.cache.use(kind, key)
        if path is None:
            raise FileNotFoundError(f"blob {key} was not fetched before generation")
        return path.read_bytes()

    def _embedding(self, job: GenerateJob) -> StyleEmbedding | None:
        if not job.embedding_key or not job.embedding_token:
            return None
        path = self.cache.use("embeddings", job.embedding_key)
        if path is None:
            raise FileNotFoundError(
                f"embedding {job.embedding_key} was not fetched before generation"
            )
        return StyleEmbedding(job.embedding_token, path)

    def generate(
        self,
        job: GenerateJob,
        lora: CachedBlob | None = None,
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
        lora: CachedBlob | None = None,
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
        loras: Sequence[CachedBlob | None],
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

    def similar_images(
        self, images: Sequence[bytes], first_new: int
    ) -> list[tuple[int, int, float]]:
        """Pairs of stored training images (PNG) alike by CLIP image embedding (see
        engine.image_similarity), with the operator's `clip_model`."""
        embedder = self.measurer.embedder(self.pipeline.device)
        pictures = [open_stored_png(data, self.max_image_pixels) for data in images]
        return similar_pairs(embedder.images(pictures), first_new)

    def caption(self, images: Sequence[bytes], should_stop: Callable[[], bool]) -> list[str]:
        """A proposed caption per stored training image (PNG), by the operator's captioner."""
        pictures = [open_stored_png(data, self.max_image_pixels) for data in images]
        captioner = self.captioner.get(self.pipeline.device, self.pipeline.dtype)
        return captioner.caption(pictures, should_stop)

    def _request(self, job: GenerateJob, weights: LoraWeights | None) -> GenerationRequest:
        embedding = self._embedding(job)
        # Other styles' tokens in the text are harmless: only the job's own reaches
        # the text encoders (GenerationRequest.embedding, engine.own_tokens).
        prompt = job.prompt
        if embedding is not None or (job.trigger and weights):
            caption = style_caption(job.trigger or "", embedding.token if embedding else None)
            prompt = f"{caption}, {prompt}"
        source = self._source(job)
        # Only Pillow's PNG decoder, the pixel count checked first (open_stored_png).
        picture = None if source is None else open_stored_png(source, self.max_image_pixels)
        mask = self._stored("sources", job.mask_key)
        picture, mask_image = job_picture_and_mask(
            job,
            picture,
            None if mask is None else open_stored_png(mask, self.max_image_pixels),
        )
        return GenerationRequest(
            prompt=prompt,
            embedding=embedding,
            init_image=picture,
            mask_image=mask_image,
            strength=job.strength if source is not None else 0.0,
            follow=job.follow,
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
        self,
        job: GenerateJob,
        prompt: str,
        images: Sequence[Image.Image],
        lora: CachedBlob | None,
    ) -> list[FinishedImage]:
        """Watermark and label each image: nothing leaves the worker without both."""
        lora_hash = lora_file_hash = None
        if lora is not None:
            lora_hash = lora.key
            lora_file_hash = self.exports.export_hash(lora.path, lora.key)
        finished = []
        now = datetime.now(UTC)
        source = self._source(job)
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
                denoising_strength=job.strength if source and not job.follow else None,
                controlnet=self.generator.modes.sketches.infotext(job.follow, job.strength),
                # Its blob key is its SHA-256 (content-addressed, checked when fetched).
                source_sha256=job.source_key if source is not None else None,
                source_output_id=job.source_output_id,
            )
            png = finish_output_png(marked, meta, self.signing, source=source)
            # PNG is lossless: these are the pixels the PNG decodes to.
            fingerprint = fingerprint_of_image(marked)
            finished.append(FinishedImage(output_id, png, seed, fingerprint))
        return finished

    def _lora_file(self, job: GenerateJob, lora: CachedBlob) -> LoraWeights:
        """The style's weights as diffusers loads them (from a file the worker fetched)."""
        if self.cache.use("loras", lora.key) is None:
            raise RevokedBlobError(f"blob {lora.key} was revoked: its style was deleted")
        # The adapter name changes with the weights, so a retrained style is reloaded.
        return LoraWeights(adapter_name=f"style{job.style_id}_{lora.key[:12]}", path=lora.path)

    def _render_preview(
        self,
        job_id: str,
        trigger: str,
        settings: TrainSettings,
        step: int,
        encoded: EncodedPrompt | None = None,
    ) -> tuple[TrainingPreview, FinishedImage]:
        """Job `job_id`'s preview at `step`, finished like any output."""
        job = preview_job(job_id, trigger, settings, step, few_step=self.generator.few_step)
        drawn = draw_preview(self.pipeline, trigger, job, encoded)
        [image] = self._finish(job, trigger, [drawn], None)
        return preview_record(image, trigger, job), image

    def _scratch(self) -> Path:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        return self.cache_dir
