"""Fixtures of tests/restore: loop devices (from the reusable tests.fixtures)."""

from tests.fixtures.loopdev import loop_factory  # noqa: F401
from tests.restore.liar import liar_device  # noqa: F401
