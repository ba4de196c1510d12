"""Shared fixtures for the whole test suite."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.s3_server import SeaweedS3


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random SD 1.5-architecture model, written once per session."""
    from stylebot.engine.tiny_model import write_tiny_model  # heavy import: only when used

    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny-sd", seed=0)


@pytest.fixture(scope="session")
def tiny_controlnet_dir(tiny_model_dir: Path) -> Path:
    """A tiny random ControlNet for the tiny SD 1.5 model (/sketch's edges)."""
    from stylebot.engine.tiny_model import write_tiny_controlnet

    return write_tiny_controlnet(tiny_model_dir.parent / "tiny-controlnet", tiny_model_dir)


@pytest.fixture(scope="session")
def tiny_depth_estimator_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random DPT depth estimator (/sketch follow:depth's depth maps)."""
    from stylebot.engine.tiny_model import write_tiny_depth_estimator

    return write_tiny_depth_estimator(tmp_path_factory.mktemp("models") / "tiny-depth")


@pytest.fixture(scope="session")
def tiny_sd2_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny SD 2.x-architecture model (v-prediction), written once per session."""
    from stylebot.engine.tiny_model import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny-sd2", family="sd2")


@pytest.fixture(scope="session")
def tiny_sdxl_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny SDXL-architecture model (two text encoders), written once per session."""
    from stylebot.engine.tiny_model import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny-sdxl", family="sdxl")


@pytest.fixture(scope="session")
def tiny_flux_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny FLUX.1-dev-architecture model (guidance input, T5 + CLIP), once per session."""
    from stylebot.engine.tiny_model import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny-flux", family="flux")


@pytest.fixture(scope="session")
def tiny_sd3_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny SD 3.5-architecture model (two CLIPs + T5, MMDiT), once per session."""
    from stylebot.engine.tiny_model import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny-sd3", family="sd3")


@pytest.fixture(scope="session")
def tiny_flux_controlnet_dir(tiny_flux_model_dir: Path) -> Path:
    """A tiny random FluxControlNetModel for the tiny FLUX.1 model (/sketch on FLUX.1)."""
    from stylebot.engine.tiny_model import write_tiny_controlnet

    folder = tiny_flux_model_dir.parent / "tiny-flux-controlnet"
    return write_tiny_controlnet(folder, tiny_flux_model_dir)


@pytest.fixture(scope="session")
def tiny_sd3_controlnet_dir(tiny_sd3_model_dir: Path) -> Path:
    """A tiny random SD3ControlNetModel for the tiny SD 3.5 model (/sketch on SD 3.5)."""
    from stylebot.engine.tiny_model import write_tiny_controlnet

    folder = tiny_sd3_model_dir.parent / "tiny-sd3-controlnet"
    return write_tiny_controlnet(folder, tiny_sd3_model_dir)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Run torch on one CPU thread for a module's tests.

    The tiny model gains nothing from more threads, and on a shared 2-core
    machine OpenMP threads spin-wait for each other: measured 10x slower under
    load (0.6 s → 7.8 s for six training steps).
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A real S3 server (SeaweedFS) for the session, with its versioned bucket
    `SeaweedS3.BUCKET`; tests take a prefix of their own in it (`s3_prefix`)."""
    with SeaweedS3(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def s3_prefix() -> str:
    """A prefix in the session's bucket that no other test uses."""
    return f"test-{os.getpid()}-{next(_PREFIX_NUMBERS)}/"


_PREFIX_NUMBERS = itertools.count(1)
