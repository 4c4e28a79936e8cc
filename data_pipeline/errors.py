"""The one exception the data pipeline raises for problems a user can fix."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(Exception):
    """A one-line, user-facing message: what is wrong with the data and what to do about it.

    Command-line tools print it (no traceback) and exit with status 2.
    """
