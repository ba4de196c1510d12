"""The GPU-side engine: loading the base pipeline and generating images."""

from stylebot.engine.generator import GenerationRequest, Generator, LoraWeights
from stylebot.engine.lora_files import StyleCard, kohya_lora_file
from stylebot.engine.lora_loading import LoraMismatchError
from stylebot.engine.models import (
    ModelLoadError,
    load_pipeline,
    pipeline_class_for,
    resolve_device,
    resolve_dtype,
)
from stylebot.engine.tiny_model import write_tiny_model

__all__ = [
    "GenerationRequest",
    "Generator",
    "LoraMismatchError",
    "LoraWeights",
    "ModelLoadError",
    "StyleCard",
    "kohya_lora_file",
    "load_pipeline",
    "pipeline_class_for",
    "resolve_device",
    "resolve_dtype",
    "write_tiny_model",
]
