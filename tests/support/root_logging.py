"""A fixture for tests that reconfigure the root logger (`configure_logging`)."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator

import pytest

__all__ = ["restore_root_logging"]


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    """The root logger's handlers and level, and the exception hooks, as they were after
    the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hooks = sys.excepthook, threading.excepthook
    yield
    sys.excepthook, threading.excepthook = hooks
    logging.captureWarnings(False)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
