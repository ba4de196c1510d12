"""A training run's resumable state: LoRA weights, optimiser, step and RNG.

A checkpoint is a plain file (torch's zip format, read back with
`weights_only=True` so a checkpoint from a shared blob store can never run
code), so the worker can keep it anywhere a blob fits and a worker on another
host can resume the run. It goes to and from the file directly: a large run's
state is never also held whole as bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from stylebot.queue.payloads import TrainSettings

log = logging.getLogger(__name__)

# Settings that change how often a run is saved, not what it computes: a run
# may resume under different values of these.
_CHECKPOINT_ONLY_SETTINGS = ("checkpoint_every_steps", "checkpoint_every_s")
FORMAT_VERSION = 1


def run_fingerprint(settings: TrainSettings) -> dict[str, Any]:
    """The settings that must match for a checkpoint to continue a run."""
    return {k: v for k, v in settings.to_dict().items() if k not in _CHECKPOINT_ONLY_SETTINGS}


@dataclass(frozen=True)
class TrainingCheckpoint:
    """The state after `step` completed steps of a run with `settings`.

    `adapter` maps the training adapter's parameter names to their values;
    `optimizer` is AdamW's `state_dict()` over those parameters in that order;
    `rng_state` is the CPU generator that draws batches, noise and timesteps,
    so a resumed run draws exactly what the uninterrupted run would have;
    `validation` is the validation curve so far, (step, loss, base loss) each;
    `embedding` is the trained token's vector(s) by file key (textual inversion; empty
    for a LoRA-only run), whose optimiser state follows the adapter's;
    `optimizer_name` is the optimiser the run used (`hardware.optimizer_name`,
    what "auto" resolved to on that host; empty in older checkpoints);
    `ema` the adapter's moving average (`trainer.ema`), when the run keeps one.
    """

    step: int
    settings: dict[str, Any]
    loss: float
    adapter: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng_state: torch.Tensor
    validation: tuple[tuple[int, float, float], ...] = ()
    embedding: dict[str, torch.Tensor] = field(default_factory=dict)
    optimizer_name: str = ""
    # The moving average of the adapter (trainer.ema; empty when the run keeps none).
    ema: dict[str, torch.Tensor] = field(default_factory=dict)

    def optimizer_kind(self) -> str:
        """The optimiser whose state this is: as recorded, else read from the state's
        keys (torch's AdamW keeps exp_avg, bitsandbytes' state1); empty if unknown."""
        if self.optimizer_name:
            return self.optimizer_name
        for state in self.optimizer.get("state", {}).values():
            if "exp_avg" in state:
                return "adamw"
            if "state1" in state:
                return "adamw8bit"
        return ""

    def continues(self, settings: TrainSettings) -> bool:
        """Whether this checkpoint belongs to a run with these settings (and is not done)."""
        return self.settings == run_fingerprint(settings) and 0 < self.step < settings.steps

    def write_to(self, path: Path) -> None:
        """Save the state to `path`, straight into the file."""
        torch.save(self._saved_form(), path)

    def _saved_form(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "step": self.step,
            "settings": self.settings,
            "loss": self.loss,
            "adapter": {k: v.detach().cpu() for k, v in self.adapter.items()},
            "optimizer": cpu_copy(self.optimizer),
            "rng_state": self.rng_state.cpu(),
            "validation": [list(point) for point in self.validation],
            "embedding": {k: v.detach().cpu() for k, v in self.embedding.items()},
            "optimizer_name": self.optimizer_name,
            "ema": {k: v.detach().cpu() for k, v in self.ema.items()},
        }

    @classmethod
    def read_from(cls, path: Path) -> TrainingCheckpoint:
        """The state saved in `path`; its tensors are read from the file, with no
        whole-file copy of it in memory first."""
        return cls._from_saved(torch.load(path, map_location="cpu", weights_only=True))

    @classmethod
    def _from_saved(cls, raw: Any) -> TrainingCheckpoint:
        if raw.get("format") != FORMAT_VERSION:
            raise ValueError(f"unknown checkpoint format {raw.get('format')!r}")
        return cls(
            step=int(raw["step"]),
            settings=dict(raw["settings"]),
            loss=float(raw["loss"]),
            adapter=dict(raw["adapter"]),
            optimizer=dict(raw["optimizer"]),
            rng_state=raw["rng_state"],
            validation=tuple(
                (int(step), float(loss), float(base))
                for step, loss, base in raw.get("validation", [])
            ),
            embedding=dict(raw.get("embedding", {})),
            optimizer_name=str(raw.get("optimizer_name", "")),
            ema=dict(raw.get("ema", {})),
        )


def cpu_copy(value: Any) -> Any:
    """A deep copy of (nested) training state with every tensor on the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {k: cpu_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [cpu_copy(v) for v in value]
    return value


def restore_checkpoint(
    saved: TrainingCheckpoint,
    names: list[str],
    params: list[torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    rng: torch.Generator,
    optimizer_used: str,
) -> None:
    """Put a run's saved weights, optimiser state and RNG back (`names`: the
    training adapter's parameter names, in the order of `params`)."""
    if sorted(saved.adapter) != sorted(names):
        raise ValueError("checkpoint does not hold this UNet's training adapter")
    with torch.no_grad():
        for name, param in zip(names, params, strict=True):
            param.copy_(saved.adapter[name].to(param.device, param.dtype))
    saved_with = saved.optimizer_kind()
    if saved_with in ("", optimizer_used):
        optimizer.load_state_dict(saved.optimizer)
    else:
        # Saved on another kind of host ("auto" picks 8-bit AdamW on CUDA with
        # bitsandbytes): one optimiser's state does not load into the other.
        log.warning(
            "checkpoint at step %d was saved with optimiser %s, this host trains with %s; "
            "its weights and step kept, optimiser state started afresh",
            saved.step,
            saved_with,
            optimizer_used,
        )
    rng.set_state(saved.rng_state)


def checkpoint_files(
    on_file: Callable[[Path, int], None] | None, directory: Path
) -> Callable[[TrainingCheckpoint], None] | None:
    """The trainer's `on_checkpoint` for a consumer of checkpoint files: each state
    is written to one file in `directory` and handed to `on_file(file, step)`, which
    must be done with it on return (the next state overwrites it)."""
    if on_file is None:
        return None
    target = directory / "checkpoint.pt"

    def save(state: TrainingCheckpoint) -> None:
        try:
            try:
                state.write_to(target)
            except OSError:  # a full scratch disk: a resumed run repeats some steps
                log.warning("checkpoint at step %d not written", state.step, exc_info=True)
                return
            on_file(target, state.step)
        finally:
            target.unlink(missing_ok=True)

    return save


def usable_checkpoint(path: Path | None, settings: TrainSettings) -> TrainingCheckpoint | None:
    """The checkpoint in the file at `path` if it can continue a run with `settings`,
    else None (logged): training again from the start is slower but always right."""
    if path is None:
        return None
    try:
        checkpoint = TrainingCheckpoint.read_from(path)
    except Exception:  # a truncated or foreign blob: start over rather than fail the job
        log.exception("unreadable training checkpoint ignored; training from step 0")
        return None
    if not checkpoint.continues(settings):
        log.warning("checkpoint at step %d is from other settings; ignored", checkpoint.step)
        return None
    return checkpoint
