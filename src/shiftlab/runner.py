"""Kept for scripts written against earlier versions: ``shiftlab.runner.run`` is
:func:`shiftlab.driver.run` (the documented entry point), and ``Session`` is
:class:`shiftlab.session.Session`."""

from shiftlab.driver import run
from shiftlab.session import Session

__all__ = ["Session", "run"]
