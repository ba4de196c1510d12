"""An image's ``parameters`` name the files its owner has, as AUTOMATIC1111 and Civitai
hash them: the style's exported LoRA (the file ``/style export`` hands out, made at the
end of training) and a single-file base checkpoint. Trained, exported and generated with
the tiny model; the hashes are computed here from the files, by A1111's rules
(tests/support/a1111.py), not taken from stylebot.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load, save
from tests.support import a1111
from tests.support.single_file import write_sd_single_file
from tests.support.tiny_styles import STRONG, TRIGGER, cached_copy, reference_images

from stylebot.engine.lora_files import read_safetensors_metadata
from stylebot.engine.runtime import StyleEngine, TrainedWeights
from stylebot.provenance.metadata import read_png_metadata
from stylebot.queue.payloads import GenerateJob, TrainJob

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

STYLE = "inkwash"  # exported as inkwash.safetensors


def _train_job(base_model: str) -> TrainJob:
    return TrainJob(
        job_id=f"train-{base_model}",
        style_id=3,
        trigger=TRIGGER,
        image_keys=(),
        settings=STRONG,
        style_name=STYLE,
        base_model=base_model,
    )


def _generate_job(name: str) -> GenerateJob:
    return GenerateJob(
        job_id=name,
        prompt="a lighthouse at dawn",
        negative_prompt="",
        seed=5,
        steps=2,
        guidance=7.5,
        width=256,  # the watermark needs 256x256 pixels
        height=256,
        output_ids=(hashlib.sha256(name.encode()).hexdigest()[:12],),
        style_id=3,
        style_name=STYLE,
        trigger=TRIGGER,
    )


def _pngs() -> list[bytes]:
    pictures = []
    for image in reference_images():
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        pictures.append(buffer.getvalue())
    return pictures


def _parameters(png: bytes) -> dict[str, str]:
    return a1111.a1111_parse(read_png_metadata(png)["parameters"])


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> StyleEngine:
    return StyleEngine(str(tiny_model_dir), tmp_path_factory.mktemp("infotext"), device="cpu")


@pytest.fixture(scope="module")
def trained(engine: StyleEngine) -> TrainedWeights:
    return engine.train(_pngs(), TRIGGER, STRONG, export_for=_train_job("tiny-sd"))


def test_the_image_names_the_exported_lora_by_the_hash_a1111_gives_that_file(
    engine: StyleEngine, trained: TrainedWeights, tiny_model_dir: Path
) -> None:
    export = trained.export_data
    assert export is not None
    [image] = engine.generate(
        _generate_job("export-hash"), cached_copy(engine.cache, "loras", trained.data)
    )

    parsed = _parameters(image.png)
    file_hash = a1111.addnet_hash(export)
    assert a1111.lora_hashes(parsed) == {STYLE: file_hash[:12]}
    assert a1111.lora_tags(parsed["Prompt"]) == [(STYLE, "1")]
    assert parsed["Prompt"].startswith(f"{TRIGGER}, a lighthouse at dawn")
    # A folder has no single file to hash: the model by name only.
    assert parsed["Model"] == tiny_model_dir.name
    assert "Model hash" not in parsed
    # The file says so itself, as sd-scripts writes it (A1111 reads this key first).
    file_meta = read_safetensors_metadata(export)
    assert file_meta["sshs_model_hash"] == file_hash
    training_only = {k: v for k, v in file_meta.items() if k.startswith("ss_")}
    resaved = save(load(export), metadata=training_only)
    assert file_meta["sshs_legacy_hash"] == a1111.legacy_model_hash(resaved)
    # A folder: no checkpoint hashes (sd-scripts writes them for a file only).
    assert "ss_new_sd_model_hash" not in file_meta
    # And it is not the hash of the trainer's own file, which no one downloads.
    assert file_hash[:12] != hashlib.sha256(trained.data).hexdigest()[:12]


def test_a_single_file_checkpoint_is_named_and_hashed_as_a1111_does(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    checkpoint = write_sd_single_file(tiny_model_dir, tmp_path / "tiny-sd-v1.safetensors")
    # `config`: the component configs offline (online they come from the hub).
    engine = StyleEngine(
        str(checkpoint), tmp_path / "cache", device="cpu", config=str(tiny_model_dir)
    )
    trained = engine.train(_pngs(), TRIGGER, STRONG, export_for=_train_job(checkpoint.name))
    assert trained.export_data is not None
    [image] = engine.generate(
        _generate_job("checkpoint-hash"), cached_copy(engine.cache, "loras", trained.data)
    )

    parsed = _parameters(image.png)
    assert parsed["Model hash"] == a1111.checkpoint_shorthash(checkpoint)
    assert parsed["Model"] == "tiny-sd-v1"
    assert a1111.lora_hashes(parsed) == {STYLE: a1111.addnet_hash(trained.export_data)[:12]}
    assert np.asarray(Image.open(io.BytesIO(image.png))).shape == (256, 256, 3)
    # The export names the checkpoint as sd-scripts does, so Civitai links the two.
    file_meta = read_safetensors_metadata(trained.export_data)
    assert file_meta["ss_new_sd_model_hash"] == a1111.checkpoint_sha256(checkpoint)
    assert file_meta["ss_sd_model_hash"] == a1111.legacy_model_hash(checkpoint.read_bytes())
    assert file_meta["ss_sd_model_name"] == checkpoint.name
