"""Per-image captions on FLUX.1 and SD 3.5 (trainer.flow_captions), through the engine
as a train job runs them: each image trains on the trigger and its own caption, every
text is encoded once before the first step, and the transformer is conditioned on
each image's own encoding."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load
from tests.integration.engine.test_caption_exports import _pictures

from stylebot.engine.runtime import JobCancelled, StyleEngine
from stylebot.queue.payloads import TrainSettings

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

TRIGGER = "sks style"
CAPTIONS = ("red city, night", "", "blue forest, fog, dawn")
SETTINGS = TrainSettings(steps=6, resolution=64, rank=4, learning_rate=1e-2, seed=7)


@dataclasses.dataclass
class Calls:
    """In order: ("encode", text) for each text CLIP encoded, ("step", rows) for each
    transformer call, `rows` the distinct T5 sequences it was conditioned on."""

    events: list[tuple[str, Any]] = dataclasses.field(default_factory=list)

    def encoded(self) -> list[str]:
        return [text for kind, text in self.events if kind == "encode"]

    def conditionings(self) -> set[bytes]:
        return {row for kind, rows in self.events if kind == "step" for row in rows}


@contextmanager
def watched(engine: StyleEngine) -> Iterator[Calls]:
    pipeline = engine.pipeline
    calls = Calls()

    def encoding(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        for ids in args[0]:
            text = pipeline.tokenizer.decode(ids, skip_special_tokens=True)
            # CLIP's tokenizer splits punctuation off: its decode writes "a , b".
            calls.events.append(("encode", text.replace(" ,", ",").strip()))

    def stepping(_module: torch.nn.Module, _args: Any, kwargs: dict[str, Any]) -> None:
        hidden = kwargs["encoder_hidden_states"]
        calls.events.append(("step", {row.detach().numpy().tobytes() for row in hidden}))

    handles = [
        pipeline.text_encoder.register_forward_pre_hook(encoding),
        pipeline.transformer.register_forward_pre_hook(stepping, with_kwargs=True),
    ]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def _train(engine: StyleEngine, captions: tuple[str, ...], settings: TrainSettings) -> Calls:
    with watched(engine) as calls:
        engine.train(_pictures(len(captions)), TRIGGER, settings, captions=captions)
    return calls


def test_each_image_trains_on_its_caption_encoded_once_before_the_first_step(
    flow_engine: StyleEngine,
) -> None:
    calls = _train(flow_engine, CAPTIONS, SETTINGS)
    # Each text once, all before the transformer's first step (the encoders can leave
    # the GPU for the run), the captionless image on the trigger alone.
    assert sorted(calls.encoded()) == sorted(
        ["sks style, red city, night", "sks style", "sks style, blue forest, fog, dawn"]
    )
    first_step = next(i for i, (kind, _) in enumerate(calls.events) if kind == "step")
    assert all(kind == "step" for kind, _ in calls.events[first_step:])
    # The transformer saw three different conditionings: each image its own.
    assert len(calls.conditionings()) == 3

    plain = _train(flow_engine, ("", "", ""), SETTINGS)
    assert plain.encoded() == ["sks style"]
    assert len(plain.conditionings()) == 1


def test_a_batch_is_conditioned_on_each_of_its_images_captions(flow_engine: StyleEngine) -> None:
    settings = dataclasses.replace(SETTINGS, steps=2, batch_size=3)
    calls = _train(flow_engine, CAPTIONS, settings)
    steps = [rows for kind, rows in calls.events if kind == "step"]
    assert steps
    assert all(len(rows) == 3 for rows in steps)


def test_a_held_out_image_is_measured_on_its_caption(flow_engine: StyleEngine) -> None:
    settings = dataclasses.replace(SETTINGS, holdout_images=1, checkpoint_every_steps=3)
    calls = _train(flow_engine, CAPTIONS, settings)
    assert sorted(calls.encoded()) == sorted(
        ["sks style, red city, night", "sks style", "sks style, blue forest, fog, dawn"]
    )


def test_shuffled_and_dropped_captions_are_encoded_up_front_and_resume_alike(
    flow_engine: StyleEngine, tmp_path: Path
) -> None:
    settings = dataclasses.replace(
        SETTINGS, steps=8, shuffle_tags=True, caption_dropout=0.3, checkpoint_every_steps=2
    )
    first, second = ["fog", "night", "red", "city"], ["blue", "forest", "dawn", "sea"]
    captions = (", ".join(first), ", ".join(second))
    with watched(flow_engine) as calls:
        whole = flow_engine.train(_pictures(2), TRIGGER, settings, captions=captions)
    texts = calls.encoded()
    assert len(texts) == len(set(texts))  # each distinct text once
    assert TRIGGER in texts  # a dropped caption: the trigger alone
    assert len({t for t in texts if set(first) & set(t.split(", "))}) > 1  # shuffled
    for text in texts:
        trigger, *tags = [tag.strip() for tag in text.split(",")]
        assert trigger == TRIGGER
        assert sorted(tags) in ([], sorted(first), sorted(second))
    first_step = next(i for i, (kind, _) in enumerate(calls.events) if kind == "step")
    assert all(kind == "step" for kind, _ in calls.events[first_step:])

    # Stopped after step 3 and resumed: the same captions, so the same weights.
    saved: list[Path] = []
    done: list[int] = []
    with pytest.raises(JobCancelled):
        flow_engine.train(
            _pictures(2),
            TRIGGER,
            settings,
            on_progress=lambda step, _total, _loss: done.append(step),
            should_stop=lambda: len(done) >= 3,
            # The engine reuses its checkpoint file: keep a copy of each.
            on_checkpoint=lambda state, step: saved.append(
                Path(shutil.copy(state, tmp_path / f"step-{step}.pt"))
            ),
            captions=captions,
        )
    resumed = flow_engine.train(
        _pictures(2), TRIGGER, settings, resume_from=saved[-1], captions=captions
    )
    assert resumed.resumed_from == 3
    resumed_weights, whole_weights = load(resumed.data), load(whole.data)
    for key, tensor in whole_weights.items():
        assert torch.allclose(resumed_weights[key], tensor, atol=1e-6), key


def test_captions_must_be_one_per_image(flow_engine: StyleEngine) -> None:
    with pytest.raises(ValueError, match="2 captions for 3 images"):
        flow_engine.train(_pictures(3), TRIGGER, SETTINGS, captions=("a", "b"))
