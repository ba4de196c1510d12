"""What every training loop keeps besides its model and its objective.

The UNet trainer (trainer.lora) and the flow-matching one (trainer.flow_matching)
differ in how they noise latents and what they predict; a step's optimisation (the
learning-rate schedule, the loss scaler, the adapter's moving average, the check
that the loss is finite), the held-out curve, cancelling, and when and what a
checkpoint saves are the same, and live here once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence

import torch

from stylebot.queue.payloads import TrainSettings, ValidationPoint
from stylebot.trainer.checkpoints import (
    TrainingCheckpoint,
    cpu_copy,
    restore_checkpoint,
    run_fingerprint,
)
from stylebot.trainer.ema import AdapterEMA
from stylebot.trainer.hardware import LossScaler, optimizer_name
from stylebot.trainer.lr_schedule import ScheduledLearningRate


class TrainingCancelled(Exception):
    """`should_stop()` returned True; no weights were written (a checkpoint may have been)."""


class TrainingNotFinite(RuntimeError):
    """The training images' latents or the loss became NaN or infinite; no
    weights were written (a LoRA trained on NaN draws only noise or black).
    `user_message` says so in words a chat user can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.user_message = message


class AdapterRun:
    """One run's optimiser, schedule, moving average, curve and checkpoints."""

    def __init__(
        self,
        names: Sequence[str],
        params: Sequence[torch.nn.Parameter],
        optimizer: torch.optim.Optimizer,
        settings: TrainSettings,
        device: torch.device,
        amp_dtype: torch.dtype | None,
        rng: torch.Generator,
    ) -> None:
        self.names, self.params = list(names), list(params)
        self.optimizer, self.settings, self.rng = optimizer, settings, rng
        # Before a checkpoint's optimiser state replaces the rates with scheduled ones.
        self.learning_rate = ScheduledLearningRate(optimizer, settings)
        self.ema = AdapterEMA(names, params, settings.ema_decay) if settings.ema_decay else None
        # What "auto" became on this host: a checkpoint records it, as its state only
        # loads into the same optimiser (see `restore_checkpoint`).
        self.optimizer_used = optimizer_name(settings.optimizer, device)
        self.scaler = LossScaler(amp_dtype)
        self.first_step = 1
        self.loss = math.nan
        self.curve: list[tuple[int, float, float]] = []
        self._saved_at = time.monotonic()

    def restore(self, checkpoint: TrainingCheckpoint) -> None:
        restore_checkpoint(
            checkpoint, self.names, self.params, self.optimizer, self.rng, self.optimizer_used
        )
        if self.ema is not None:
            self.ema.load_state(checkpoint.ema)
        self.first_step = checkpoint.step + 1
        self.loss = checkpoint.loss
        self.curve = list(checkpoint.validation)

    def checkpoint(
        self, step: int, embedding: Mapping[str, torch.Tensor] | None = None
    ) -> TrainingCheckpoint:
        return TrainingCheckpoint(
            step=step,
            settings=run_fingerprint(self.settings),
            loss=self.loss,
            # Copies: the run goes on changing the live tensors.
            adapter=cpu_copy(dict(zip(self.names, self.params, strict=True))),
            optimizer=cpu_copy(self.optimizer.state_dict()),
            optimizer_name=self.optimizer_used,
            rng_state=self.rng.get_state(),
            validation=tuple(self.curve),
            embedding=dict(embedding or {}),
            ema=self.ema.state() if self.ema is not None else {},
        )

    def stop_if_asked(
        self,
        step: int,
        should_stop: Callable[[], bool] | None,
        save: Callable[[int], None] | None,
    ) -> None:
        """`TrainingCancelled` before `step` when asked to stop, after saving the
        last finished step (when this run finished one)."""
        if should_stop is None or not should_stop():
            return
        if save is not None and step > self.first_step:
            save(step - 1)
        raise TrainingCancelled(f"training cancelled before step {step} of {self.settings.steps}")

    def optimise(self, loss: torch.Tensor, step: int) -> None:
        """One optimiser step on `loss` at the scheduled rate; at the last step the
        moving average (when kept) becomes the weights that are validated and saved."""
        self.optimizer.zero_grad(set_to_none=True)
        self.learning_rate.set_for(step)
        self.scaler.backward_and_step(loss, self.optimizer)
        if self.ema is not None:
            self.ema.update()
            if step == self.settings.steps:
                self.ema.copy_to_params()
        value = float(loss.detach())
        if not math.isfinite(value):
            # Diverged (or overflowed in half precision): the weights are broken, so
            # neither they nor a checkpoint are saved.
            raise TrainingNotFinite(
                f"training diverged: the loss became {value} at step {step} of "
                f"{self.settings.steps}; nothing was saved. Try a lower learning rate "
                f"(it was {self.settings.learning_rate:g}) or float32 training"
            )
        self.loss = value

    def finish_step(
        self,
        step: int,
        on_progress: Callable[[int, int, float], None] | None,
        validate: Callable[[int], None],
        save: Callable[[int], None] | None,
    ) -> None:
        """Report the step, validate at checkpoint steps and the end, and save a
        checkpoint when one is due (every `checkpoint_every_steps` or `_s`)."""
        settings, total = self.settings, self.settings.steps
        if on_progress is not None:
            on_progress(step, total, self.loss)
        if step % settings.checkpoint_every_steps == 0 or step == total:
            validate(step)
        # The last step's state is the result itself: no checkpoint for it.
        due = (
            step % settings.checkpoint_every_steps == 0
            or time.monotonic() - self._saved_at >= settings.checkpoint_every_s
        )
        if save is not None and step < total and due:
            save(step)
            self._saved_at = time.monotonic()

    def validation(self) -> tuple[ValidationPoint, ...]:
        return tuple(ValidationPoint(*point) for point in self.curve)
