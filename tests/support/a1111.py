"""AUTOMATIC1111's rules for reading an image's ``parameters`` and hashing model files,
written out independently of stylebot so tests can check its output against them.

Sources (AUTOMATIC1111/stable-diffusion-webui): ``modules/infotext_utils.py``
``parse_generation_parameters`` (its "PNG Info" tab and paste button), ``modules/hashes.py``
and ``sd_models.CheckpointInfo.calculate_shorthash``; the LoRA hash as
``extensions-builtin/Lora/network.py`` takes it (``sshs_model_hash``, else the same
"addnet" hash computed), and kohya-ss/sd-scripts ``library/train_util.py``
(``addnet_hash_safetensors``, ``addnet_hash_legacy``, ``precalculate_safetensors_hashes``).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_RE_IMAGESIZE = re.compile(r"^(\d+)x(\d+)$")
_RE_LORA_TAG = re.compile(r"<lora:([^:>]+):([^>]+)>")


def a1111_parse(text: str) -> dict[str, str]:
    """The core of ``parse_generation_parameters``: prompt, negative prompt, key/values."""
    result: dict[str, str] = {}
    prompt, negative, done_with_prompt = "", "", False
    *lines, lastline = text.strip().split("\n")
    if len(_RE_PARAM.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ""
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[16:].strip()
        if done_with_prompt:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    result["Prompt"], result["Negative prompt"] = prompt, negative
    for key, value in _RE_PARAM.findall(lastline):
        if value[:1] == '"' and value[-1:] == '"':
            value = json.loads(value)
        size = _RE_IMAGESIZE.match(value)
        if size:
            result[f"{key}-1"], result[f"{key}-2"] = size.group(1), size.group(2)
        else:
            result[key] = value
    return result


def lora_tags(prompt: str) -> list[tuple[str, str]]:
    """(name, weight) of each ``<lora:NAME:WEIGHT>`` in a prompt, as extra networks see it."""
    return _RE_LORA_TAG.findall(prompt)


def lora_hashes(parsed: dict[str, str]) -> dict[str, str]:
    """``Lora hashes: "name: hash, name: hash"`` as a dict."""
    pairs = [item.split(":", 1) for item in parsed.get("Lora hashes", "").split(",") if item]
    return {name.strip(): shorthash.strip() for name, shorthash in pairs}


def addnet_hash(file: bytes) -> str:
    """SHA-256 of a safetensors file after its 8-byte length and JSON header."""
    header = int.from_bytes(file[:8], "little")
    return hashlib.sha256(file[8 + header :]).hexdigest()


def checkpoint_shorthash(path: Path) -> str:
    """``Model hash``: the first 10 hex digits of the whole file's SHA-256."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


def checkpoint_sha256(path: Path) -> str:
    """sd-scripts' ``ss_new_sd_model_hash``: the whole file's SHA-256."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def legacy_model_hash(data: bytes) -> str:
    """The old A1111 hash (``ss_sd_model_hash``, ``sshs_legacy_hash``): 8 hex digits of
    the SHA-256 of the 64 KiB at offset 1 MiB."""
    return hashlib.sha256(data[0x100000 : 0x100000 + 0x10000]).hexdigest()[:8]
