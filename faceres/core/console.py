"""What faceres says while it works: its modules log to the ``faceres`` logger, shown on stdout as plain lines.

The CLI's ``-v`` / ``-q`` (or ``$FACERES_VERBOSITY``, which the DVC stages and torchrun's children read) pick
the level: -1 warnings only, 0 what each stage did (default), 1 also debug detail. Errors stay one
``error: ...`` line on stderr (:func:`faceres.core.errors.user_errors_exit`); progress bars are tqdm's, on stderr.
"""

from __future__ import annotations

import logging
import os
import sys

VERBOSITY_ENV = "FACERES_VERBOSITY"
_HANDLER_NAME = "faceres-console"


def configure_logging(verbosity: int | None = None) -> None:
    """Show the ``faceres`` logger's messages on stdout at the level of `verbosity` (default: the environment's)."""
    if verbosity is None:
        try:
            verbosity = int(os.environ.get(VERBOSITY_ENV) or 0)
        except ValueError:
            verbosity = 0
    logger = logging.getLogger("faceres")
    logger.setLevel(logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO)
    if not any(handler.get_name() == _HANDLER_NAME for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.propagate = False
