"""User-facing errors: one line that names the file, key or value and says what is allowed.

Library code raises these instead of letting a traceback reach the user; the CLI and the stage entry points
print ``error: <message>`` and exit with status 2.
"""


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
