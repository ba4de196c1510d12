"""Fixtures: the real stack (see tests/support/stack.py)."""

from tests.support.stack import frontend, inbox, redis, settings, tiny_engine, worker

__all__ = ["frontend", "inbox", "redis", "settings", "tiny_engine", "worker"]
