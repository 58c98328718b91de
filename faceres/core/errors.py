"""User-facing errors: one line that names the file, key or value and says what is allowed.

Library code raises these instead of letting a traceback reach the user; the CLI and the stage entry points
(:func:`user_errors_exit`) print ``error: <message>`` and exit with status 2.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable

EXIT_USER_ERROR = 2


class FaceresError(Exception):
    """An error whose message is a complete, one-line explanation for the user."""

    def __init__(self, message: str):
        if "\n" in message:
            message = " ".join(part.strip() for part in message.splitlines() if part.strip())
        super().__init__(message)


class ConfigError(FaceresError):
    """A parameter is missing, unknown or out of its allowed range."""


class DataError(FaceresError):
    """An input image or folder cannot be used (corrupt, wrong mode, too small, empty, ...)."""


class WeightsError(FaceresError):
    """Pretrained weights are missing, unverifiable or corrupt."""


class TrackingError(FaceresError):
    """The MLflow tracking store cannot be reached or written."""


def user_errors_exit(main: Callable[..., int | None]) -> Callable[..., int]:
    """Turn FaceresError into `error: <one line>` on stderr and exit status 2 (no traceback); the entry point
    of every stage and of the CLI, so it also sets up the console messages (faceres.core.console)."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        from faceres.core.console import configure_logging

        configure_logging()
        try:
            return main(*args, **kwargs) or 0
        except FaceresError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USER_ERROR
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130

    return wrapper
