"""LoRA training of styles (diffusers + peft) and its image preparation."""

from stylebot.trainer.borrowed_unet import DeviceSharing
from stylebot.trainer.checkpoints import TrainingCheckpoint
from stylebot.trainer.dataset import prepare_training_image, prepare_upload
from stylebot.trainer.lora import (
    WEIGHTS_NAME,
    TrainingCancelled,
    TrainingNotFinite,
    TrainOutcome,
    train_lora,
)

__all__ = [
    "WEIGHTS_NAME",
    "DeviceSharing",
    "TrainOutcome",
    "TrainingCancelled",
    "TrainingCheckpoint",
    "TrainingNotFinite",
    "prepare_training_image",
    "prepare_upload",
    "train_lora",
]
