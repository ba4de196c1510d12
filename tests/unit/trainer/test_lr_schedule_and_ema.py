"""The learning-rate schedule's values and the moving average's arithmetic."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from stylebot.queue.payloads import TrainSettings
from stylebot.trainer.ema import AdapterEMA, ema_decay_at
from stylebot.trainer.lr_schedule import ScheduledLearningRate, lr_factor, warmup_steps


def test_cosine_warms_up_linearly_then_falls_as_a_half_cosine() -> None:
    rates = [lr_factor(step, 100, 10, "cosine") for step in range(1, 101)]
    assert rates[:10] == pytest.approx([0.1 * i for i in range(1, 11)])
    assert rates[10] == 1.0  # the first step after warm-up trains at the full rate
    # Half way through the 90 decaying steps: half the rate.
    assert lr_factor(56, 100, 10, "cosine") == pytest.approx(0.5)
    assert rates[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 89 / 90)))
    assert 0 < rates[-1] < 0.001
    assert all(a >= b for a, b in itertools.pairwise(rates[10:]))


def test_constant_holds_the_rate_after_warm_up_and_no_warm_up_starts_at_full() -> None:
    assert [lr_factor(s, 8, 4, "constant") for s in range(1, 9)] == [
        0.25,
        0.5,
        0.75,
        1.0,
        1.0,
        1.0,
        1.0,
        1.0,
    ]
    assert lr_factor(1, 8, 0, "cosine") == 1.0
    assert lr_factor(1, 8, 0, "constant") == 1.0


def test_bad_schedules_and_steps_are_refused() -> None:
    with pytest.raises(ValueError, match="lr_schedule"):
        lr_factor(1, 10, 0, "linear")
    with pytest.raises(ValueError, match="outside"):
        lr_factor(11, 10, 0, "cosine")


def test_warm_up_is_a_fraction_of_the_run() -> None:
    assert warmup_steps(TrainSettings(steps=300, lr_warmup=0.05)) == 15
    assert warmup_steps(TrainSettings(steps=6, lr_warmup=0.05)) == 0


def test_each_parameter_group_follows_its_own_base_rate() -> None:
    lora, token = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.AdamW([lora], lr=1e-4)
    optimizer.add_param_group({"params": [token], "lr": 5e-3})
    schedule = ScheduledLearningRate(optimizer, TrainSettings(steps=10, lr_warmup=0.2))
    schedule.set_for(1)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.5e-4, 2.5e-3])
    schedule.set_for(3)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1e-4, 5e-3])
    schedule.set_for(10)
    expected = 0.5 * (1 + math.cos(math.pi * 7 / 8))
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx(
        [1e-4 * expected, 5e-3 * expected]
    )


def test_the_average_follows_the_warmed_up_decay() -> None:
    assert ema_decay_at(0.999, 1) == pytest.approx(2 / 11)
    assert ema_decay_at(0.5, 100) == 0.5
    param = torch.nn.Parameter(torch.tensor([0.0, 4.0]))
    ema = AdapterEMA(["w"], [param], decay=0.5)
    values = [torch.tensor([2.0, 2.0]), torch.tensor([4.0, 0.0]), torch.tensor([8.0, 8.0])]
    expected = torch.tensor([0.0, 4.0])
    for n, value in enumerate(values, start=1):
        with torch.no_grad():
            param.copy_(value)
        ema.update()
        decay = min(0.5, (1 + n) / (10 + n))
        expected = decay * expected + (1 - decay) * value
    assert torch.allclose(ema.average[0], expected)
    assert not torch.allclose(ema.average[0], param.detach())
    ema.copy_to_params()
    assert torch.equal(param.detach(), ema.average[0])


def test_the_average_survives_a_checkpoint_and_refuses_another_adapter() -> None:
    param = torch.nn.Parameter(torch.ones(3))
    ema = AdapterEMA(["w"], [param], decay=0.9)
    ema.update()
    again = AdapterEMA(["w"], [torch.nn.Parameter(torch.zeros(3))], decay=0.9)
    again.load_state(ema.state())
    assert again.updates == 1
    assert torch.equal(again.average[0], ema.average[0])
    with pytest.raises(ValueError, match="adapter"):
        AdapterEMA(["other"], [param], decay=0.9).load_state(ema.state())
    with pytest.raises(ValueError, match="ema_decay"):
        AdapterEMA(["w"], [param], decay=1.0)
