"""LoRA training of styles (diffusers + peft) and its image preparation."""

from stylebot.trainer.dataset import prepare_training_image
from stylebot.trainer.lora import (
    WEIGHTS_NAME,
    TrainingCancelled,
    TrainOutcome,
    train_lora,
)

__all__ = [
    "WEIGHTS_NAME",
    "TrainOutcome",
    "TrainingCancelled",
    "prepare_training_image",
    "train_lora",
]
