"""Textual inversion on the tiny models: only the token's vector trains, the file
loads with diffusers' `load_textual_inversion` and changes the image, "both"
trains a LoRA too, a resumed run ends where the whole run ends, and the
shared pipeline is left as it was."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
from PIL import Image
from safetensors.torch import load_file, save_file
from tests.support.stored_checkpoints import as_stored
from tests.support.tiny_styles import cached_copy

from stylebot.engine.generation_request import GenerationRequest
from stylebot.engine.generator import Generator
from stylebot.engine.models import load_pipeline
from stylebot.engine.worker_cache import BlobCache
from stylebot.queue.payloads import TrainSettings
from stylebot.style_tokens import TRAINING_TOKEN
from stylebot.trainer.adapter_run import TrainingCancelled
from stylebot.trainer.checkpoints import TrainingCheckpoint
from stylebot.trainer.embeddings import (
    EMBEDDING_NAME,
    StyleEmbedding,
    initial_vector,
    text_encoder_slots,
)
from stylebot.trainer.lora import train_lora

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

TRIGGER = "sks style"
TOKEN = "<sb-41>"
# A large embedding learning rate: the tiny model must visibly move in a few steps.
SETTINGS = TrainSettings(
    steps=4,
    resolution=64,
    rank=4,
    learning_rate=1e-3,
    seed=7,
    method="textual_inversion",
    embedding_learning_rate=5e-2,
)


def _images(count: int = 2) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, (72 + 8 * i, 96, 3), dtype=np.uint8))
        for i in range(count)
    ]


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def _unchanged(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> bool:
    after = module.state_dict()
    return after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


def _sample(
    pipeline: StableDiffusionPipeline | StableDiffusionXLPipeline, prompt: str
) -> np.ndarray:
    image = pipeline(
        prompt,
        num_inference_steps=3,
        width=64,
        height=64,
        generator=torch.Generator().manual_seed(3),
    ).images[0]
    return np.asarray(image, dtype=np.int16)


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir: Path) -> StableDiffusionPipeline:
    return load_pipeline(str(tiny_model_dir), device="cpu")


def test_textual_inversion_trains_only_the_tokens_vector(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    unet_before = _snapshot(pipeline.unet)
    encoder_before = _snapshot(pipeline.text_encoder)
    vocabulary = dict(pipeline.tokenizer.get_vocab())
    grads = [p.requires_grad for p in pipeline.text_encoder.parameters()]
    [slot] = text_encoder_slots(pipeline)
    start = initial_vector(slot)

    outcome = train_lora(pipeline, _images(), TRIGGER, SETTINGS, tmp_path / "ti")

    assert outcome.weights_path is None  # no LoRA
    assert outcome.embedding_path == tmp_path / "ti" / EMBEDDING_NAME
    assert not (tmp_path / "ti" / "pytorch_lora_weights.safetensors").exists()
    saved = load_file(outcome.embedding_path)
    assert list(saved) == ["emb_params"]
    vector = saved["emb_params"]
    assert vector.shape == (1, pipeline.text_encoder.config.hidden_size)
    assert not torch.allclose(vector[0], start), "the token's vector did not train"
    # Everything else is as it was: UNet, the encoder's table (every row), the
    # tokenizer (the training token removed again), the encoder's flags.
    assert _unchanged(pipeline.unet, unet_before)
    assert _unchanged(pipeline.text_encoder, encoder_before)
    assert dict(pipeline.tokenizer.get_vocab()) == vocabulary
    assert TRAINING_TOKEN not in pipeline.tokenizer.get_vocab()
    assert [p.requires_grad for p in pipeline.text_encoder.parameters()] == grads


def test_the_embedding_loads_with_load_textual_inversion_and_changes_the_image(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    trainer = load_pipeline(str(tiny_model_dir), device="cpu")
    outcome = train_lora(trainer, _images(), TRIGGER, SETTINGS, tmp_path / "ti")
    assert outcome.embedding_path is not None
    [slot] = text_encoder_slots(trainer)
    start = initial_vector(slot)

    fresh = load_pipeline(str(tiny_model_dir), device="cpu")
    prompt = f"{TOKEN} {TRIGGER}"
    fresh.load_textual_inversion(str(outcome.embedding_path), token=TOKEN)
    trained = _sample(fresh, prompt)
    fresh.unload_textual_inversion(TOKEN)
    # The same token at its starting point (the initializer word's embedding).
    fresh.load_textual_inversion(start, token=TOKEN)
    untrained = _sample(fresh, prompt)
    assert np.abs(trained - untrained).mean() > 0.5


def test_both_trains_the_lora_and_the_embedding(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    settings = dataclasses.replace(SETTINGS, method="both")
    lora_only = train_lora(
        pipeline, _images(), TRIGGER, dataclasses.replace(settings, method="lora"), tmp_path / "l"
    )
    both = train_lora(pipeline, _images(), TRIGGER, settings, tmp_path / "both")
    assert both.weights_path is not None
    assert both.embedding_path is not None
    assert lora_only.embedding_path is None
    lora = load_file(both.weights_path)
    assert lora
    assert all("lora" in key for key in lora)
    assert list(load_file(both.embedding_path)) == ["emb_params"]
    # The caption differs (the token starts it) and the embedding trains with
    # the LoRA, so the LoRA differs from a LoRA-only run on the same seed.
    plain = load_file(lora_only.weights_path)  # type: ignore[arg-type]
    assert lora.keys() == plain.keys()
    assert any(not torch.equal(lora[k], plain[k]) for k in lora)


@pytest.mark.parametrize("method", ["textual_inversion", "both"])
def test_a_resumed_run_ends_with_the_embedding_of_the_whole_run(
    pipeline: StableDiffusionPipeline, tmp_path: Path, method: str
) -> None:
    settings = dataclasses.replace(SETTINGS, steps=5, checkpoint_every_steps=2, method=method)
    whole = train_lora(pipeline, _images(), TRIGGER, settings, tmp_path / "whole")

    saved: list[TrainingCheckpoint] = []
    done: list[int] = []
    with pytest.raises(TrainingCancelled):
        train_lora(
            pipeline,
            _images(),
            TRIGGER,
            settings,
            tmp_path / "stopped",
            on_progress=lambda step, _total, _loss: done.append(step),
            should_stop=lambda: len(done) >= 3,
            on_checkpoint=saved.append,
        )
    restored = as_stored(saved[-1], tmp_path)
    assert restored.step == 3
    assert list(restored.embedding) == ["emb_params"]
    resumed = train_lora(
        pipeline, _images(), TRIGGER, settings, tmp_path / "resumed", resume_from=restored
    )
    assert resumed.resumed_from == 3
    assert whole.embedding_path is not None
    assert resumed.embedding_path is not None
    a, b = load_file(whole.embedding_path), load_file(resumed.embedding_path)
    assert torch.allclose(a["emb_params"], b["emb_params"], rtol=1e-4, atol=1e-6)
    if method == "both":
        assert whole.weights_path is not None
        assert resumed.weights_path is not None
        la, lb = load_file(whole.weights_path), load_file(resumed.weights_path)
        assert all(torch.allclose(la[k], lb[k], rtol=1e-4, atol=1e-6) for k in la)

    # A LoRA-only checkpoint does not continue a textual-inversion run.
    assert not restored.continues(dataclasses.replace(settings, method="lora"))


def test_an_unknown_method_is_refused_and_changes_nothing(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    vocabulary = dict(pipeline.tokenizer.get_vocab())
    with pytest.raises(ValueError, match="method must be one of"):
        train_lora(
            pipeline,
            _images(),
            TRIGGER,
            dataclasses.replace(SETTINGS, method="dreambooth"),
            tmp_path / "x",
        )
    assert dict(pipeline.tokenizer.get_vocab()) == vocabulary
    assert not (tmp_path / "x").exists()


class _GenerationWithAnEmbedding:
    """Between two training steps, a Generator loads another style's token
    (which replaces the encoder's embedding table) and generates with it."""

    def __init__(self, generator: Generator, embedding: StyleEmbedding) -> None:
        self.generator = generator
        self.embedding = embedding
        self.images: list[Image.Image] = []

    def has_waiting(self) -> bool:
        return not self.images

    def run_waiting(self) -> None:
        request = GenerationRequest(
            f"{self.embedding.token} a boat",
            steps=2,
            width=64,
            height=64,
            embedding=self.embedding,
        )
        self.images += self.generator.generate(request)


def test_training_goes_on_when_generation_loads_another_token_between_steps(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    first = train_lora(pipeline, _images(), TRIGGER, SETTINGS, tmp_path / "first")
    assert first.embedding_path is not None
    alone = train_lora(pipeline, _images(), TRIGGER, SETTINGS, tmp_path / "alone")
    generator = Generator(pipeline)
    sharing = _GenerationWithAnEmbedding(generator, StyleEmbedding(TOKEN, first.embedding_path))
    try:
        shared = train_lora(
            pipeline, _images(), TRIGGER, SETTINGS, tmp_path / "shared", device_sharing=sharing
        )
        assert len(sharing.images) == 1
        assert generator.embeddings.tokens == (TOKEN,)
        # The other style's token stays loaded; the training token is gone.
        vocabulary = pipeline.tokenizer.get_vocab()
        assert TOKEN in vocabulary
        assert TRAINING_TOKEN not in vocabulary
        assert shared.embedding_path is not None
        assert alone.embedding_path is not None
        a, b = load_file(alone.embedding_path), load_file(shared.embedding_path)
        assert torch.allclose(a["emb_params"], b["emb_params"], rtol=1e-4, atol=1e-6)
    finally:
        pipeline.unload_textual_inversion(TOKEN)


def test_the_generator_caches_embeddings_and_reloads_a_retrained_one(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    one = train_lora(pipeline, _images(), TRIGGER, SETTINGS, tmp_path / "one")
    two = train_lora(
        pipeline, _images(), TRIGGER, dataclasses.replace(SETTINGS, seed=8), tmp_path / "two"
    )
    assert one.embedding_path is not None
    assert two.embedding_path is not None
    generator = Generator(pipeline, max_loaded_adapters=1)
    size = pipeline.text_encoder.get_input_embeddings().weight.shape[0]
    try:

        def image(embedding: StyleEmbedding) -> np.ndarray:
            request = GenerationRequest(
                f"{embedding.token} {TRIGGER}", steps=3, width=64, height=64, embedding=embedding
            )
            return np.asarray(generator.generate(request)[0], dtype=np.int16)

        first = image(StyleEmbedding(TOKEN, one.embedding_path))
        again = image(StyleEmbedding(TOKEN, one.embedding_path))
        assert np.array_equal(first, again)
        assert pipeline.text_encoder.get_input_embeddings().weight.shape[0] == size + 1
        retrained = image(StyleEmbedding(TOKEN, two.embedding_path))
        assert np.abs(retrained - first).mean() > 0.5
        # A second style with a cache of one: the first one's token is unloaded.
        image(StyleEmbedding("<sb-42>", one.embedding_path))
        assert generator.embeddings.tokens == ("<sb-42>",)
        assert TOKEN not in pipeline.tokenizer.get_vocab()
        assert pipeline.text_encoder.get_input_embeddings().weight.shape[0] == size + 1

        # A file for another model family is refused, and nothing is loaded.
        wrong = tmp_path / "wrong.safetensors"

        save_file({"clip_l": torch.zeros(1, 8), "clip_g": torch.zeros(1, 8)}, str(wrong))
        with pytest.raises(ValueError, match="emb_params"):
            image(StyleEmbedding("<sb-43>", wrong))
        assert "<sb-43>" not in pipeline.tokenizer.get_vocab()
    finally:
        for token in generator.embeddings.tokens:
            pipeline.unload_textual_inversion(token)


def test_sdxl_trains_one_vector_per_text_encoder_and_generates_with_them(
    tiny_sdxl_model_dir: Path, tmp_path: Path
) -> None:
    pipe = load_pipeline(str(tiny_sdxl_model_dir), device="cpu")
    assert isinstance(pipe, StableDiffusionXLPipeline)
    before = (_snapshot(pipe.text_encoder), _snapshot(pipe.text_encoder_2), _snapshot(pipe.unet))
    starts = {slot.key: initial_vector(slot) for slot in text_encoder_slots(pipe)}
    outcome = train_lora(pipe, _images(), TRIGGER, SETTINGS, tmp_path / "xl")
    assert outcome.embedding_path is not None
    assert outcome.weights_path is None
    saved = load_file(outcome.embedding_path)
    assert sorted(saved) == ["clip_g", "clip_l"]
    assert saved["clip_l"].shape == (1, pipe.text_encoder.config.hidden_size)
    assert saved["clip_g"].shape == (1, pipe.text_encoder_2.config.hidden_size)
    assert all(not torch.allclose(saved[k][0], starts[k]) for k in saved)
    assert _unchanged(pipe.text_encoder, before[0])
    assert _unchanged(pipe.text_encoder_2, before[1])
    assert _unchanged(pipe.unet, before[2])
    assert TRAINING_TOKEN not in pipe.tokenizer.get_vocab()
    assert TRAINING_TOKEN not in pipe.tokenizer_2.get_vocab()

    generator = Generator(pipe)
    prompt = f"{TOKEN} {TRIGGER}"
    request = GenerationRequest(prompt, steps=3, width=64, height=64, guidance=5.0)
    trained = generator.generate(
        dataclasses.replace(request, embedding=StyleEmbedding(TOKEN, outcome.embedding_path))
    )[0]
    assert TOKEN in pipe.tokenizer.get_vocab()
    assert TOKEN in pipe.tokenizer_2.get_vocab()
    # The same token at the initializer word's embeddings: the request owns the
    # token it names (the Generator keeps every other added token from a prompt).
    untrained_file = tmp_path / "untrained.safetensors"
    save_file({key: vector[None] for key, vector in starts.items()}, str(untrained_file))
    untrained = generator.generate(
        dataclasses.replace(request, embedding=StyleEmbedding(TOKEN, untrained_file))
    )[0]
    difference = np.abs(
        np.asarray(trained, dtype=np.int16) - np.asarray(untrained, dtype=np.int16)
    ).mean()
    assert difference > 0.5


def test_the_engine_returns_the_embedding_and_previews_show_the_token_in_training(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import io

    from stylebot.engine.runtime import StyleEngine
    from stylebot.engine.training_previews import TrainingPreviews
    from stylebot.queue.payloads import GenerateJob

    engine = StyleEngine(str(tiny_model_dir), tmp_path / "cache", device="cpu")
    uploads = []
    for image in _images():
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        uploads.append(buffer.getvalue())
    previews: list[tuple[int, str]] = []
    settings = dataclasses.replace(SETTINGS, preview_every_steps=2)
    trained = engine.train(
        uploads,
        TRIGGER,
        settings,
        previews=TrainingPreviews(
            "job-ti", lambda step, preview, _image: previews.append((step, preview.prompt))
        ),
    )
    assert trained.data == b""  # no LoRA
    assert trained.export_data is None
    assert trained.embedding_data is not None
    assert previews == [(2, f"{TRAINING_TOKEN} {TRIGGER}")]

    cached_copy(engine.cache, "embeddings", trained.embedding_data, "e" * 64)
    job = GenerateJob(
        "g1",
        "a boat",
        "",
        3,
        2,
        7.5,
        256,
        256,
        ("0123456789ab",),
        style_id=41,
        trigger=TRIGGER,
        embedding_key="e" * 64,
        embedding_token=TOKEN,
    )
    [made] = engine.generate(job)
    assert engine.generator.embeddings.tokens == (TOKEN,)
    plain = dataclasses.replace(job, embedding_key=None, embedding_token=None)
    [base] = engine.generate(plain)
    with Image.open(io.BytesIO(made.png)) as a, Image.open(io.BytesIO(base.png)) as b:
        assert a.info["parameters"].startswith(f"{TOKEN} {TRIGGER}, a boat")
        assert b.info["parameters"].startswith("a boat")
        difference = np.abs(
            np.asarray(a.convert("RGB"), dtype=np.int16)
            - np.asarray(b.convert("RGB"), dtype=np.int16)
        ).mean()
    assert difference > 0.5


def test_a_revoked_embedding_leaves_the_pipeline(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    """A deleted style's token goes from memory too: the worker cache names files by
    blob key, and the Generator unloads by that key (stylebot.queue.cache_revocation)."""
    trained = train_lora(pipeline, _images(), TRIGGER, SETTINGS, tmp_path / "trained")
    assert trained.embedding_path is not None
    data = trained.embedding_path.read_bytes()
    key = hashlib.sha256(data).hexdigest()
    cached = cached_copy(BlobCache(tmp_path / "cache"), "embeddings", data, key).path
    generator = Generator(pipeline, max_loaded_adapters=2)
    size = pipeline.text_encoder.get_input_embeddings().weight.shape[0]
    try:
        request = GenerationRequest(
            f"{TOKEN} {TRIGGER}",
            steps=1,
            width=64,
            height=64,
            embedding=StyleEmbedding(TOKEN, cached),
        )
        generator.generate(request)
        assert generator.embeddings.tokens == (TOKEN,)

        assert generator.unload_files({"0" * 64}) == 0  # another blob: stays
        assert generator.unload_files({key}) == 1

        assert generator.embeddings.tokens == ()
        assert TOKEN not in pipeline.tokenizer.get_vocab()
        assert pipeline.text_encoder.get_input_embeddings().weight.shape[0] == size
    finally:
        for token in generator.embeddings.tokens:
            pipeline.unload_textual_inversion(token)
