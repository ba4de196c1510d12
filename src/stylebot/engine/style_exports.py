"""A trained style as AUTOMATIC1111 / ComfyUI / diffusers load it (kohya layout with
metadata), and the hash A1111 gives that file, which every image in the style names."""

from __future__ import annotations

import logging
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path

from stylebot.engine.families import LICENCES, family_variant, is_flow_pipeline
from stylebot.engine.flow_lora_files import flow_export_hash, flow_lora_file
from stylebot.engine.lora_files import StyleCard, export_model_hash, kohya_lora_file
from stylebot.engine.lora_loading import model_label
from stylebot.engine.models import AnyPipeline, model_family
from stylebot.provenance.a1111_hashes import addnet_hash, checkpoint_legacy_hash
from stylebot.queue.payloads import TrainedBase, TrainJob, TrainSettings
from stylebot.trainer.captions import tag_frequency

log = logging.getLogger(__name__)

# Styles whose export hash generation remembers (one conversion each, then free).
_EXPORT_HASHES_KEPT = 64


class StyleExports:
    """Exports of the styles trained on `pipeline`, loaded from `base_model`
    (`checkpoint_sha256`: the single-file checkpoint's hash, None for a folder)."""

    def __init__(
        self, pipeline: AnyPipeline, base_model: str, checkpoint_sha256: str | None
    ) -> None:
        self.pipeline = pipeline
        self.base_model = base_model
        self.checkpoint_sha256 = checkpoint_sha256
        # sha256 of a style's weights -> its export's hash (see export_hash).
        self._export_hashes: OrderedDict[str, str] = OrderedDict()
        # A single-file pipeline has no name of its own: the file's, as sd-scripts writes.
        name = Path(base_model).name if checkpoint_sha256 else model_label(pipeline)
        variant = family_variant(pipeline) or model_family(pipeline)
        licence = LICENCES.get(variant)
        # What every style trained here records of its base, and its export says.
        self.trained_base = TrainedBase(
            name=name,
            variant=variant,
            sha256=checkpoint_sha256 or "",
            licence=licence.name if licence else "",
            licence_url=licence.url if licence else "",
        )

    def kohya_export(
        self,
        weights: bytes,
        trigger: str,
        settings: TrainSettings,
        job: TrainJob | None,
        image_count: int,
    ) -> bytes | None:
        """The LoRA as AUTOMATIC1111 / ComfyUI / diffusers load it, with its metadata."""
        base = self.trained_base
        trained_on = base.name
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
            base_model_sha256=base.sha256,
            base_model_legacy_hash=(
                checkpoint_legacy_hash(Path(self.base_model)) if self.checkpoint_sha256 else ""
            ),
            base_model_variant=base.variant,
            base_model_licence=base.licence,
            base_model_licence_url=base.licence_url,
            tag_frequency=tag_frequency(
                trigger, job.captions if job is not None else (), image_count, settings.repeats
            ),
        )
        variant = family_variant(self.pipeline)
        try:
            if variant is not None:  # FLUX.1 / SD 3.5: ComfyUI's layout for the family
                return flow_lora_file(
                    weights,
                    card,
                    settings,
                    variant=variant,
                    trained_at=datetime.now(UTC),
                    image_count=image_count,
                )
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

    def export_hash(self, weights: Path, key: str) -> str:
        """The hash A1111 gives the file `/style export` hands out for the weights in
        this file (sha256 `key`): the kohya export's (made at training end from the
        same weights on this model), or, when no export can be made, the weights' own.
        Read once per style (kept by key)."""
        cache = self._export_hashes
        if key not in cache:
            lora = weights.read_bytes()
            try:
                cache[key] = (
                    flow_export_hash(lora)
                    if is_flow_pipeline(self.pipeline)
                    else export_model_hash(
                        lora,
                        family=model_family(self.pipeline),
                        unet_config=self.pipeline.unet.config,
                    )
                )
            except Exception:  # as kohya_export: no export, so the download is `lora`
                log.warning("no kohya export for weights %s: naming them as they are", key[:12])
                cache[key] = addnet_hash(lora)
            if len(cache) > _EXPORT_HASHES_KEPT:
                cache.popitem(last=False)
        cache.move_to_end(key)
        return cache[key]
