"""Tiny random captioners, written offline from their configs (as transformers' own
tests build them): a Florence-2 and a BLIP folder that `stylebot.engine.captioner` loads
like real checkpoints. Their words are noise; tests check the wiring, not the words."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import (
    BartTokenizer,
    BertTokenizer,
    BlipConfig,
    BlipForConditionalGeneration,
    BlipImageProcessor,
    BlipProcessor,
    CLIPImageProcessor,
    Florence2Config,
    Florence2ForConditionalGeneration,
    Florence2Processor,
)

from stylebot.engine.captioner import CaptionerSlot
from stylebot.engine.runtime import StyleEngine

# Images are read at 16 px: Florence-2's first stage (stride 4) makes 4 × 4 features,
# plus one pooled, which is how many image tokens its processor must insert.
IMAGE_SIZE = 16
_FLORENCE_IMAGE_TOKENS = (IMAGE_SIZE // 4) ** 2 + 1


def _byte_level_alphabet() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes: a byte-level BPE vocabulary with no
    merges, enough for BART's tokenizer to read and write any text."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    extra = (b for b in range(256) if b not in printable)
    chars = {b: chr(b) for b in printable}
    chars.update({b: chr(256 + n) for n, b in enumerate(extra)})
    return [chars[b] for b in range(256)]


def write_tiny_florence2(folder: Path, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["<s>", "<pad>", "</s>", "<unk>", *_byte_level_alphabet()]
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = BartTokenizer(
        str(folder / "vocab.json"),
        str(folder / "merges.txt"),
        extra_special_tokens={"image_token": "<image>"},
    )
    image_processor = CLIPImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_center_crop=False,
        image_seq_length=_FLORENCE_IMAGE_TOKENS,
    )
    Florence2Processor(image_processor, tokenizer).save_pretrained(folder)
    torch.manual_seed(seed)
    config = Florence2Config(
        text_config={
            "model_type": "bart",
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 128,
            "encoder_layers": 1,
            "encoder_ffn_dim": 16,
            "decoder_layers": 1,
            "decoder_ffn_dim": 16,
            "encoder_attention_heads": 1,
            "decoder_attention_heads": 1,
            "d_model": 16,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            "decoder_start_token_id": tokenizer.eos_token_id,
        },
        vision_config={
            "depths": [1],
            "patch_size": [7],
            "patch_stride": [4],
            "patch_padding": [3],
            "patch_prenorm": [False],
            "embed_dim": [16],
            "num_heads": [1],
            "num_groups": [1],
            "window_size": 12,
            "projection_dim": 16,
        },
        image_token_id=tokenizer.image_token_id,
    )
    Florence2ForConditionalGeneration(config).save_pretrained(folder)
    return folder


def write_tiny_blip(folder: Path, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
    words = [*specials, *"abcdefghijklmnopqrstuvwxyz", "city", "night", "fog", "harbour"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"), bos_token="[DEC]")
    image_processor = BlipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    BlipProcessor(image_processor, tokenizer).save_pretrained(folder)
    torch.manual_seed(seed)
    config = BlipConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_attention_heads": 2,
            "num_hidden_layers": 1,
            "encoder_hidden_size": 16,
            "max_position_embeddings": 128,
            # BLIP's decoder starts from its [DEC] token and stops at [SEP].
            "bos_token_id": tokenizer.convert_tokens_to_ids("[DEC]"),
            "pad_token_id": tokenizer.pad_token_id,
            "sep_token_id": tokenizer.sep_token_id,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_attention_heads": 2,
            "num_hidden_layers": 1,
            "image_size": IMAGE_SIZE,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    BlipForConditionalGeneration(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_captioner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Florence-2 captioner, written once per session."""
    return write_tiny_florence2(tmp_path_factory.mktemp("captioners") / "florence2")


@pytest.fixture
def captioning_engine(
    tiny_engine: StyleEngine, tiny_captioner_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> StyleEngine:
    """The stack's shared engine (tests/support/stack.py) with the tiny captioner configured,
    as `captioner` would configure it, for this test only."""
    monkeypatch.setattr(tiny_engine, "captioner", CaptionerSlot(str(tiny_captioner_dir)))
    return tiny_engine
