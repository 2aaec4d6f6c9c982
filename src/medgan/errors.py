"""Errors a user can cause. The CLI prints them as one line and exits 2; tracebacks are for bugs only."""

from __future__ import annotations

import re
from pathlib import Path

TRACEBACK = "Traceback (most recent call last)"
# Lines that open or join the blocks of a printed traceback; the frames below them are indented.
_TRACEBACK_OPENERS = (TRACEBACK, "During handling of the above exception", "The above exception was the direct cause")
# A traceback already flattened onto one line: its header and "File ..., line N, in f" frame references.
_FLAT_TRACEBACK = re.compile(r'Traceback \(most recent call last\):?|File "[^"]*", line \d+(?:, in [^\s]+)?')


def without_traceback(text: str) -> list[str]:
    """The lines of an exception's text that say what went wrong, stripped: without blank lines and without the
    blocks of a traceback that a library put into its message (the header, the indented frames and the lines
    that chain tracebacks); the exception line that ends a traceback (``OSError: [Errno 28] ...``) is kept."""
    kept: list[str] = []
    inside = False
    for line in str(text).splitlines():
        stripped = line.strip()
        if inside and (not stripped or line[:1].isspace() or stripped.startswith('File "')):
            continue
        inside = False
        opener = next((o for o in _TRACEBACK_OPENERS if o in stripped), None)
        if opener is not None:  # "unreadable DICOM (OSError: Traceback (most recent call last):" keeps its head
            head, _, rest = stripped.partition(opener)
            rest = rest[1:] if opener == TRACEBACK and rest.startswith(":") else rest
            if opener != TRACEBACK or not rest.strip():  # a traceback block follows: skip its frames
                if head.strip():
                    kept.append(head.strip())
                inside = True
                continue
            # A traceback flattened onto this line: its frame references go (below), its last exception stays.
            rest = " ".join(_FLAT_TRACEBACK.sub(" ", rest).split())
            stripped = f"{head}{rest}" if head.endswith("(") else f"{head} {rest}"
        stripped = " ".join(_FLAT_TRACEBACK.sub(" ", stripped).split())
        if stripped:
            kept.append(stripped)
    return kept


def first_meaningful_line(text: str) -> str:
    """The first line of ``text`` that says what went wrong (``without_traceback``), or "" when there is none."""
    lines = without_traceback(text)
    return lines[0] if lines else ""


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
        """The error as the CLI prints it, without the `error:` prefix: one line, whitespace collapsed, and never
        a traceback, even when the message wraps a library's exception text that holds one."""
        text = " ".join(without_traceback(str(self.message)))
        return f"{self.path}: {text}" if self.path else text


class DataError(MedganError):
    """A missing, unreadable, empty or malformed data file or folder."""


class ConfigError(MedganError):
    """An unknown config key or an invalid config value."""


class CheckpointError(MedganError):
    """A checkpoint that is corrupt, missing or incompatible with the requested model."""


class TrainingError(MedganError):
    """Training cannot go on (for example a NaN or Inf loss)."""
