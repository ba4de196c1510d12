"""A training run whose latents or loss are not finite fails the job, and the
user is told why in the trainer's words, not only the error's class."""

from __future__ import annotations

from stylebot.queue.job_lifecycle import user_error
from stylebot.trainer.adapter_run import TrainingNotFinite


def test_the_failed_job_reports_the_trainers_message() -> None:
    error = TrainingNotFinite("training diverged: the loss became nan at step 3 of 10")
    assert user_error(error) == error.user_message
    assert "the loss became nan" in user_error(error)
    assert user_error(RuntimeError("cuda")) == "the worker hit an error (RuntimeError)"
