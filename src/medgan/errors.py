"""Errors a user can cause. The CLI prints them as one line and exits 2; tracebacks are for bugs only."""

from __future__ import annotations

from pathlib import Path


class MedganError(Exception):
    """Base class for every error caused by user input (paths, files, config values, checkpoints).

    Args:
        message: what is wrong, in one line.
        path: the file or folder the problem is about, if any; printed before the message.
    """

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The error as the CLI prints it, without the `error:` prefix."""
        text = " ".join(str(self.message).split())
        return f"{self.path}: {text}" if self.path else text


class DataError(MedganError):
    """A missing, unreadable, empty or malformed data file or folder."""


class ConfigError(MedganError):
    """An unknown config key or an invalid config value."""


class CheckpointError(MedganError):
    """A checkpoint that is corrupt, missing or incompatible with the requested model."""


class TrainingError(MedganError):
    """Training cannot go on (for example a NaN or Inf loss)."""
