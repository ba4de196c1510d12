"""Which optimiser a checkpoint's state belongs to: as recorded, else from its keys."""

from __future__ import annotations

from pathlib import Path

import torch

from stylebot.trainer.checkpoints import TrainingCheckpoint


def _checkpoint(state: dict[int, dict[str, torch.Tensor]], name: str = "") -> TrainingCheckpoint:
    return TrainingCheckpoint(
        step=1,
        settings={},
        loss=0.5,
        adapter={},
        optimizer={"state": state, "param_groups": []},
        rng_state=torch.Generator().get_state(),
        optimizer_name=name,
    )


def test_the_recorded_optimiser_is_kept_through_its_file(tmp_path: Path) -> None:
    saved = _checkpoint({0: {"exp_avg": torch.zeros(1)}}, "adamw8bit")
    saved.write_to(tmp_path / "state.pt")
    assert TrainingCheckpoint.read_from(tmp_path / "state.pt").optimizer_kind() == "adamw8bit"


def test_a_checkpoint_from_before_the_record_is_known_by_its_state_keys(tmp_path: Path) -> None:
    torch_state = {0: {"step": torch.tensor(2.0), "exp_avg": torch.zeros(1)}}
    bnb_state = {0: {"step": torch.tensor(2.0), "state1": torch.zeros(1)}}
    assert _checkpoint(torch_state).optimizer_kind() == "adamw"
    assert _checkpoint(bnb_state).optimizer_kind() == "adamw8bit"
    assert _checkpoint({}).optimizer_kind() == ""
    _checkpoint(bnb_state).write_to(tmp_path / "old.pt")
    assert TrainingCheckpoint.read_from(tmp_path / "old.pt").optimizer_kind() == "adamw8bit"
