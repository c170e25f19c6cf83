"""The error types of ``lss``: what the command line turns into one ``lss: error:`` line.

At the bottom of the package (it imports nothing of ``lss``), so that every layer can
raise them and :mod:`lss.cli` can catch them without importing the layers above it.
"""

from __future__ import annotations

__all__ = ["DataError", "WorkerDied"]


class DataError(ValueError):
    """Bad input data: a missing or malformed file, table, series or value.

    The message always names the file, study or series concerned, so that the
    command line can print it as a one-line error.
    """


class WorkerDied(RuntimeError):
    """A preprocessing worker process ended without an answer (killed, out of memory)."""
