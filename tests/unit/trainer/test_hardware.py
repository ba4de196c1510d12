"""Optimiser and precision choices: what a CPU worker gets, and refused values."""

from __future__ import annotations

import logging

import pytest
import torch

from stylebot.trainer.hardware import (
    autocast_dtype,
    bitsandbytes_available,
    make_optimizer,
    optimizer_name,
)

CPU = torch.device("cpu")


def test_a_cpu_trains_with_adamw_whatever_was_asked(caplog: pytest.LogCaptureFixture) -> None:
    assert optimizer_name("auto", CPU) == "adamw"
    assert optimizer_name("adamw", CPU) == "adamw"
    with caplog.at_level(logging.WARNING):
        assert optimizer_name("adamw8bit", CPU) == "adamw"
    assert "8-bit AdamW needs CUDA and bitsandbytes" in caplog.text
    with pytest.raises(ValueError, match="optimizer"):
        optimizer_name("sgd", CPU)


def test_8bit_adamw_on_cuda_only_when_bitsandbytes_imports() -> None:
    expected = "adamw8bit" if bitsandbytes_available() else "adamw"
    assert optimizer_name("auto", torch.device("cuda")) == expected
    assert optimizer_name("adamw", torch.device("cuda")) == "adamw"


def test_the_choice_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    param = torch.nn.Parameter(torch.zeros(3))
    with caplog.at_level(logging.INFO, logger="stylebot.trainer.hardware"):
        optimizer = make_optimizer([param], 1e-3, "auto", CPU)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert "training optimiser: adamw (asked for auto, device cpu)" in caplog.text


def test_autocast_only_on_a_gpu() -> None:
    for requested in ("auto", "no", "fp16", "bf16"):
        assert autocast_dtype(requested, CPU) is None
    cuda = torch.device("cuda")
    assert autocast_dtype("no", cuda) is None
    assert autocast_dtype("fp16", cuda) == torch.float16
    assert autocast_dtype("bf16", cuda) == torch.bfloat16
    # auto follows a half-precision pipeline.
    assert autocast_dtype("auto", cuda, torch.float16) == torch.float16
    assert autocast_dtype("auto", cuda, torch.bfloat16) == torch.bfloat16
    with pytest.raises(ValueError, match="mixed_precision"):
        autocast_dtype("fp8", CPU)
