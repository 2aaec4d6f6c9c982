"""The evaluation outputs meant for sharing (``medgan evaluate --no-real-images``) name no data location.

A folder is often named after its patient (``/data/Doe_John_1970``), so with ``real_images=False`` every user
path of the real, training, synthetic, member and non-member sets in ``metrics.json`` and ``report.html`` is
replaced by what the set is and a short hash of the path: ``real set (path sha256 3f2a9c41d07e)``. Embedded
sources (``mni152``, ``ct-phantom``, ...) are not user data and keep their names. The data card written beside
them never holds a path (``medgan.card``).

The hash is SHA-256 of the absolute path (``~`` expanded, symlinks resolved, as text), first 12 hex digits: the
owner can tell which folder a report used (hash the candidate path the same way, e.g.
``medgan.evaluation.shareable.path_digest("/data/Doe_John_1970")``), and two reports on one folder show one
hash; the path cannot be read back from it, though someone who guesses the full path exactly can confirm the
guess. Notes that list file names (blank images left out) keep their counts only. Any other text that still
holds one of these paths (an error message kept as a note) has it replaced too (``scrub``).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Mapping

DIGEST_LENGTH = 12  # hex digits of SHA-256 shown: 48 bits, enough to tell a user's folders apart


def path_digest(text: str | Path) -> str:
    """The short SHA-256 of a path as the shareable outputs show it (module docstring)."""
    return hashlib.sha256(_absolute(str(text)).encode("utf-8")).hexdigest()[:DIGEST_LENGTH]


def shared_name(source: str | Path, label: str) -> str:
    """``source`` as the shareable outputs show it: an embedded source name as is, a path as ``label`` and its
    digest (``"real set (path sha256 3f2a9c41d07e)"``)."""
    from medgan.data.sources import SOURCES

    text = str(source)
    if text in SOURCES.names():  # the data pipeline reads these names as the embedded sources, never as folders
        return text
    return f"{label} (path sha256 {path_digest(text)})"


def scrub(value: Any, paths: Mapping[str, str]) -> Any:
    """``value`` (JSON-like: dicts, lists, strings) with every path of ``paths`` (path -> shared name) replaced
    wherever it appears inside a string.

    Each path is matched in the forms a message may show it: as typed, normalized, absolute and resolved. A form
    is replaced where it is not part of a longer name, together with the path below it (``/scan.nii.gz``: a file
    name can name a patient too); a form without a separator (``--real scans``) only where it stands as a path
    (followed by ``/`` or ``:``), so that ``scans`` in other words is left alone.
    """
    patterns = [(pattern, name) for path, name in paths.items() for pattern in _patterns(path)]
    if not patterns:
        return value

    def clean(item: Any) -> Any:
        if isinstance(item, str):
            for pattern, name in patterns:
                item = pattern.sub(name.replace("\\", "\\\\"), item)
            return item
        if isinstance(item, Mapping):
            return {key: clean(entry) for key, entry in item.items()}
        if isinstance(item, (list, tuple)):
            return [clean(entry) for entry in item]
        return item

    return clean(value)


def _absolute(text: str) -> str:
    path = Path(text).expanduser()
    try:
        return path.resolve().as_posix()
    except (OSError, RuntimeError):  # a symlink loop: the absolute path as typed
        return path.absolute().as_posix()


def _patterns(path: str) -> list[re.Pattern]:
    """The regular expressions that find ``path`` in text, longest form first (so a longer form wins)."""
    typed = str(path)
    forms = {typed, str(Path(typed)), str(Path(typed).expanduser()), str(Path(typed).expanduser().absolute()),
             _absolute(typed)}
    patterns = []
    for form in sorted((form for form in forms if form and form != "."), key=len, reverse=True):
        after = r"(?![\w.\-])" if "/" in form else r"(?=[/:])"
        below = r"(?:/[^\s:;,()\[\]'\"]*)?"  # the files and folders under it, up to a space or punctuation
        patterns.append(re.compile(r"(?<![\w.\-/~])" + re.escape(form) + after + below))
    return patterns
