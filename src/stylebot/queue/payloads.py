"""Job payloads and events: the only data that crosses the queue.

Everything here is plain data that round-trips through JSON, so a worker on
another host needs nothing but Redis and the blob store to do its job.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Self

JobKind = Literal["train", "generate"]


class _JsonData:
    """Round-trip a (possibly nested) dataclass through a JSON-ready dict."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name not in data:
                continue
            value = data[f.name]
            nested = _NESTED.get((cls.__name__, f.name))
            if nested is not None and value is not None:
                if isinstance(value, list | tuple):
                    value = tuple(nested.from_dict(v) for v in value)
                else:
                    value = nested.from_dict(value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class TrainSettings(_JsonData):
    """Hyper-parameters of one LoRA training run."""

    steps: int = 200
    resolution: int = 512
    rank: int = 8
    learning_rate: float = 1e-4
    batch_size: int = 1
    seed: int = 0
    # A worker saves the run (LoRA, optimiser, step, RNG) after this many steps
    # or this many seconds, whichever comes first, so a crashed worker's run
    # resumes from there instead of from step 0.
    checkpoint_every_steps: int = 50
    checkpoint_every_s: float = 30.0


@dataclass(frozen=True)
class TrainJob(_JsonData):
    job_id: str
    style_id: int
    trigger: str
    image_keys: tuple[str, ...]
    settings: TrainSettings = field(default_factory=TrainSettings)
    # Who asked (any stable id, e.g. "discord:1234"): workers let the jobs of
    # different owners take turns. None: a queue of its own.
    owner: str | None = None


@dataclass(frozen=True)
class GenerateJob(_JsonData):
    """One generation request. `output_ids` are allocated by the front end so
    that the worker can watermark each image with its record id before the
    image leaves the worker; there is one image per output id."""

    job_id: str
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance: float
    width: int
    height: int
    output_ids: tuple[str, ...]
    style_id: int | None = None
    style_name: str | None = None
    lora_key: str | None = None
    trigger: str | None = None
    base_model: str = ""
    # A variation: the starting noise moves from `seed`'s towards
    # `variation_seed`'s by `variation_strength` (0 = the same image).
    variation_seed: int | None = None
    variation_strength: float = 0.0
    # Who asked (any stable id, e.g. "discord:1234"): workers let the jobs of
    # different owners take turns. None: a queue of its own.
    owner: str | None = None


@dataclass(frozen=True)
class TrainResult(_JsonData):
    lora_key: str
    steps: int
    final_loss: float
    seconds: float


@dataclass(frozen=True)
class GeneratedImage(_JsonData):
    output_id: str
    blob_key: str
    seed: int


@dataclass(frozen=True)
class GenerateResult(_JsonData):
    images: tuple[GeneratedImage, ...]
    seconds: float


EventKind = Literal["started", "progress", "finished", "failed", "cancelled"]


@dataclass(frozen=True)
class JobEvent(_JsonData):
    """What a worker tells the front end about a job. `result` holds a
    TrainResult or GenerateResult as a dict when `kind == "finished"`."""

    job_id: str
    job_kind: JobKind
    kind: EventKind
    step: int = 0
    total: int = 0
    loss: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None

    def train_result(self) -> TrainResult:
        assert self.result is not None
        return TrainResult.from_dict(self.result)

    def generate_result(self) -> GenerateResult:
        assert self.result is not None
        return GenerateResult.from_dict(self.result)


_NESTED: dict[tuple[str, str], type[_JsonData]] = {
    ("TrainJob", "settings"): TrainSettings,
    ("GenerateResult", "images"): GeneratedImage,
}
