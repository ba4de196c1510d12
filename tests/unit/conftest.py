"""Unit-test fixtures: the bot core on in-memory fakes of its ports."""

from __future__ import annotations

import pytest
from tests.fakes.core import CoreWorld, core_world


@pytest.fixture
def world() -> CoreWorld:
    return core_world()
