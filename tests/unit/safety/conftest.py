"""The core on in-memory fakes with the consent ledger and opt-out registry wired in."""

from __future__ import annotations

import pytest
from tests.fakes.safety import SafetyWorld, safety_world


@pytest.fixture
def safe() -> SafetyWorld:
    return safety_world()
