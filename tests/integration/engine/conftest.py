"""Fixtures the engine tests of FLUX.1 and SD 3.5 share."""

from __future__ import annotations

from pathlib import Path

import pytest

from stylebot.engine.models import model_family
from stylebot.engine.runtime import StyleEngine

# The session fixture (tests/conftest.py) that writes each flow family's tiny model.
FLOW_MODEL_DIRS = {"flux": "tiny_flux_model_dir", "sd3": "tiny_sd3_model_dir"}
# And the session fixture that writes a tiny random ControlNet for it.
FLOW_CONTROLNET_DIRS = {"flux": "tiny_flux_controlnet_dir", "sd3": "tiny_sd3_controlnet_dir"}


@pytest.fixture(scope="module", params=sorted(FLOW_MODEL_DIRS))
def flow_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> StyleEngine:
    """A CPU engine on the tiny FLUX.1 model, then on the tiny SD 3.5 one."""
    model_dir: Path = request.getfixturevalue(FLOW_MODEL_DIRS[request.param])
    made = StyleEngine(str(model_dir), tmp_path_factory.mktemp("flow-engine"), device="cpu")
    assert model_family(made.pipeline) == request.param
    return made
