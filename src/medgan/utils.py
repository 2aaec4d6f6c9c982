"""Small helpers shared across the package: atomic writes and defaults."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import tempfile
from pathlib import Path
from typing import Iterator, TypeVar

T = TypeVar("T")


def exists(value: object) -> bool:
    """True when ``value`` is not None."""
    return value is not None


def default(value: T | None, fallback: T) -> T:
    """``value`` unless it is None, else ``fallback``."""
    return fallback if value is None else value


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; on success it is renamed onto ``path``, on error removed.

    Readers never see a half-written file, and a crash leaves the previous file intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the real suffix so libraries that pick a format by extension (nibabel, PIL) still work.
    tmp = _new_file(path.parent, prefix=f".{path.stem}.", suffix="".join(path.suffixes) or ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_file(folder: Path, prefix: str, suffix: str) -> Path:
    """Creates an empty file with a fresh random name in ``folder`` and returns its path.

    Like ``tempfile.mkstemp``, but with the permissions of any other file the program creates. mkstemp makes
    0600 files, and widening them to 0666 less the umask needs the umask, which a process can only read by
    setting it (``os.umask``): a process-wide change that races with files created by other threads. Here
    open(2) gets mode 0666 and the kernel applies the umask (or the folder's default ACL) itself. O_EXCL
    makes a name that exists, or a symlink planted at it, fail instead of being reused.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(tempfile.TMP_MAX):
        candidate = folder / f"{prefix}{secrets.token_hex(8)}{suffix}"
        try:
            os.close(os.open(candidate, flags, 0o666))
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(folder))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Runs the block with ``count`` torch CPU threads (0 = unchanged), restoring the previous setting after.

    Library calls must not change process-wide state, so every thread-count change is scoped this way.
    """
    import torch  # here, so that importing medgan.utils stays light

    previous = torch.get_num_threads()
    if count > 0:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)

