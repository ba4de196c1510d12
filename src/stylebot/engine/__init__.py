"""The GPU-side engine: loading the base pipeline and generating images."""

from stylebot.engine.generator import GenerationRequest, Generator, LoraWeights
from stylebot.engine.models import (
    ModelLoadError,
    load_pipeline,
    pipeline_class_for,
    resolve_device,
    resolve_dtype,
    write_tiny_model,
)

__all__ = [
    "GenerationRequest",
    "Generator",
    "LoraWeights",
    "ModelLoadError",
    "load_pipeline",
    "pipeline_class_for",
    "resolve_device",
    "resolve_dtype",
    "write_tiny_model",
]
