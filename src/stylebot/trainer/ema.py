"""An exponential moving average of the training adapter's weights (`ema_decay`).

The average smooths the last steps' noise out of the weights; when it is on, it
is what the run saves as the style (and what the final validation measures).
Its decay warms up as diffusers' `EMAModel` does, min(decay, (1 + n) / (10 + n))
after n updates, so a short run is not stuck near the adapter's initial weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def ema_decay_at(decay: float, updates: int) -> float:
    """The decay used for update number `updates` (1 for the first)."""
    return min(decay, (1 + updates) / (10 + updates))


class AdapterEMA:
    """The moving average of `params` (by `names`), kept in float32 beside them."""

    def __init__(
        self, names: Sequence[str], params: Sequence[torch.nn.Parameter], decay: float
    ) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"ema_decay must be between 0 and 1, got {decay}")
        self.names = list(names)
        self.params = list(params)
        self.decay = decay
        self.updates = 0
        self.average = [p.detach().float().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        """Fold the parameters' current values in (after an optimiser step)."""
        self.updates += 1
        decay = ema_decay_at(self.decay, self.updates)
        for average, param in zip(self.average, self.params, strict=True):
            average.mul_(decay).add_(param.detach().float(), alpha=1 - decay)

    @torch.no_grad()
    def copy_to_params(self) -> None:
        """Make the parameters the average (the run's end: what is saved)."""
        for average, param in zip(self.average, self.params, strict=True):
            param.copy_(average.to(param.dtype))

    def state(self) -> dict[str, torch.Tensor]:
        """For a checkpoint: the average by parameter name, and the update count."""
        state = {
            name: a.detach().cpu().clone() for name, a in zip(self.names, self.average, strict=True)
        }
        state["__updates__"] = torch.tensor(self.updates)
        return state

    def load_state(self, state: Mapping[str, torch.Tensor]) -> None:
        if sorted(k for k in state if k != "__updates__") != sorted(self.names):
            raise ValueError("checkpoint's EMA does not hold this run's adapter")
        for index, name in enumerate(self.names):
            self.average[index] = state[name].to(self.average[index].device).float().clone()
        self.updates = int(state["__updates__"])
