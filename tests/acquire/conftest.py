"""Fixtures of tests/acquire: loop devices and the EIO device (from the reusable tests.fixtures)."""

from tests.fixtures.eio import eio_device  # noqa: F401
from tests.fixtures.loopdev import loop_factory  # noqa: F401
