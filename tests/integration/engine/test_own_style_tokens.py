"""A style's textual-inversion token stays its own on a shared worker.

The victim's embedding (or a training run's `<sb-training>`) is loaded on the
worker; an attacker's job that names the token in its prompt or negative prompt,
in any spelling the tokenizer maps to it, gets exactly the image of the prompt
without it, on SD 1.5, SD 2.x and SDXL. The victim still gets their token.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from tests.support.tiny_styles import cached_copy, pixels

from stylebot.engine.generation_request import GenerationRequest
from stylebot.engine.generator import Generator
from stylebot.engine.models import BasePipeline, load_pipeline
from stylebot.engine.own_tokens import only_own_style_tokens
from stylebot.engine.runtime import StyleEngine
from stylebot.queue.payloads import GenerateJob
from stylebot.style_tokens import TRAINING_TOKEN, style_embedding_token
from stylebot.trainer.embeddings import (
    StyleEmbedding,
    TextEncoderSlot,
    TrainableToken,
    load_embedding,
    text_encoder_slots,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

MODEL_DIRS = {"sd15": "tiny_model_dir", "sd2": "tiny_sd2_model_dir", "sdxl": "tiny_sdxl_model_dir"}
VICTIM = style_embedding_token(1)
PLAIN = GenerationRequest("a cat", negative_prompt="blurry", seed=3, steps=2, width=64, height=64)
# Spellings CLIP's tokenizer reads as the token: it lowercases, and an added
# token is found anywhere in the text.
CRAFTED_PROMPTS = ("{token} a cat", "{upper} a cat", "a cat {token}{token}")
CRAFTED_NEGATIVES = ("{token} blurry", "blurry {upper}")


def _victim_embedding(pipeline: BasePipeline, folder: Path) -> Path:
    """An embedding file in the trainer's layout, far from any word, so that an
    image it reaches differs visibly."""
    generator = torch.Generator().manual_seed(0)
    vectors = {
        slot.key: 40 * torch.randn(1, slot.text_encoder.config.hidden_size, generator=generator)
        for slot in text_encoder_slots(pipeline)
    }
    path = folder / "victim.safetensors"
    save_file(vectors, str(path))
    return path


def _crafted(request: GenerationRequest, token: str) -> list[GenerationRequest]:
    spell = {"token": token, "upper": token.upper()}
    return [
        dataclasses.replace(request, prompt=text.format(**spell)) for text in CRAFTED_PROMPTS
    ] + [
        dataclasses.replace(request, negative_prompt=text.format(**spell))
        for text in CRAFTED_NEGATIVES
    ]


def _image(generator: Generator, request: GenerationRequest) -> np.ndarray:
    return pixels(generator.generate(request)[0])


@pytest.fixture(params=sorted(MODEL_DIRS))
def pipeline(request: pytest.FixtureRequest) -> BasePipeline:
    model_dir: Path = request.getfixturevalue(MODEL_DIRS[request.param])
    return load_pipeline(str(model_dir), device="cpu")


def test_a_loaded_style_token_reaches_no_other_jobs_text(
    pipeline: BasePipeline, tmp_path: Path
) -> None:
    generator = Generator(pipeline)
    victim = StyleEmbedding(VICTIM, _victim_embedding(pipeline, tmp_path))
    plain = _image(generator, PLAIN)
    own = _image(generator, dataclasses.replace(PLAIN, prompt=f"{VICTIM} a cat", embedding=victim))
    assert np.abs(own - plain).mean() > 0.5, "the victim's token changes its own image"
    assert VICTIM in pipeline.tokenizer.get_vocab()  # still loaded for the next jobs

    for crafted in _crafted(PLAIN, VICTIM):
        assert np.array_equal(_image(generator, crafted), plain), crafted

    # In one batch with the victim's own job, row by row.
    attack = dataclasses.replace(PLAIN, prompt=f"{VICTIM.upper()} a cat")
    victims_row = dataclasses.replace(PLAIN, prompt=f"{VICTIM} a cat", embedding=victim, seed=4)
    alongside_plain = generator.generate_batch([victims_row, PLAIN])
    alongside_attack = generator.generate_batch([victims_row, attack])
    assert np.array_equal(pixels(alongside_attack[1][0]), pixels(alongside_plain[1][0]))
    assert np.array_equal(pixels(alongside_attack[0][0]), pixels(alongside_plain[0][0]))


def test_the_token_of_a_run_in_training_reaches_no_generation(
    pipeline: BasePipeline,
) -> None:
    generator = Generator(pipeline)
    plain = _image(generator, PLAIN)
    with TrainableToken(pipeline).attached() as training:
        with torch.no_grad():
            for vector in training.vectors.values():
                vector.mul_(40)
        trained = pipeline(
            f"{TRAINING_TOKEN} a cat",
            negative_prompt="blurry",
            num_inference_steps=PLAIN.steps,
            width=PLAIN.width,
            height=PLAIN.height,
            generator=torch.Generator().manual_seed(PLAIN.seed),
        ).images[0]
        assert np.abs(pixels(trained) - plain).mean() > 0.5, "the run's token changes an image"
        for crafted in _crafted(PLAIN, TRAINING_TOKEN):
            assert np.array_equal(_image(generator, crafted), plain), crafted


def _encoded(slot: TextEncoderSlot, text: str) -> torch.Tensor:
    """`text` through one text encoder, ids and attention mask passed by keyword."""
    tokens = slot.tokenizer(
        text,
        padding="max_length",
        max_length=slot.tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        encoded: torch.Tensor = slot.text_encoder(
            input_ids=tokens.input_ids, attention_mask=tokens.attention_mask
        )[0]
    return encoded


def test_keyword_ids_and_an_attention_mask_become_the_plain_prompts(
    pipeline: BasePipeline, tmp_path: Path
) -> None:
    load_embedding(pipeline, _victim_embedding(pipeline, tmp_path), VICTIM)
    for slot in text_encoder_slots(pipeline):
        plain = _encoded(slot, "a cat")
        with only_own_style_tokens(pipeline, [frozenset()]):
            assert torch.equal(_encoded(slot, f"a {VICTIM}cat{VICTIM.upper()}"), plain)
        assert not torch.equal(_encoded(slot, f"a {VICTIM}cat"), plain)  # the hook is gone


def _job(name: str, prompt: str, negative: str = "", **style: object) -> GenerateJob:
    """A 256 px job; every job has the same output id, so the same watermark."""
    return GenerateJob(
        job_id=name,
        prompt=prompt,
        negative_prompt=negative,
        seed=3,
        steps=2,
        guidance=7.5,
        width=256,  # the watermark needs 256 px
        height=256,
        output_ids=("0123456789ab",),
        **style,  # type: ignore[arg-type]
    )


def _engine_pixels(engine: StyleEngine, job: GenerateJob) -> np.ndarray:
    [made] = engine.generate(job)
    with Image.open(io.BytesIO(made.png)) as image:
        return pixels(image.convert("RGB"))


def test_the_engine_keeps_the_victims_embedding_from_an_attackers_job(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The issue's case through the worker's engine: the job's text as sent."""
    engine = StyleEngine(str(tiny_model_dir), tmp_path / "cache", device="cpu")
    path = _victim_embedding(engine.pipeline, tmp_path)
    cached_copy(engine.cache, "embeddings", path.read_bytes(), "v" * 64)
    # A nested spelling is plain text to the tokenizer: the image does not
    # depend on whether the victim's embedding is loaded.
    nested = _job("nested", "<sb<sb-x>-1> a cat")
    before = _engine_pixels(engine, nested)
    engine.generate(
        _job("victim", "a cat", style_id=1, embedding_key="v" * 64, embedding_token=VICTIM)
    )
    assert engine.generator.embeddings.tokens == (VICTIM,)

    assert np.array_equal(_engine_pixels(engine, nested), before)
    plain = _engine_pixels(engine, _job("plain", "a cat", "blurry"))
    for name, prompt, negative in [
        ("upper", f"{VICTIM.upper()} a cat", "blurry"),
        ("negative", "a cat", f"{VICTIM} blurry"),
    ]:
        assert np.array_equal(_engine_pixels(engine, _job(name, prompt, negative)), plain), name
