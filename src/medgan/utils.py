"""Small helpers shared across the package: atomic writes and defaults."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping, TypeVar

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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Keep the real suffix so libraries that pick a format by extension (nibabel, PIL) still work.
        tmp = _new_file(path.parent, prefix=f".{path.stem}.", suffix="".join(path.suffixes) or ".tmp")
    except OSError as error:
        raise _naming(error, path) from None
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise _naming(error, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _naming(error: OSError, path: Path) -> OSError:
    """``error`` naming ``path`` where it named a temporary file beside it (or no file).

    Users know the file they asked for, not ``.name.3f2a....png``; an error about another file (say a parent
    folder that is a file) keeps its own name.
    """
    named = None if error.filename is None else Path(error.filename)
    temporary = named is None or (named.parent == path.parent and named.name.startswith(f".{path.stem}."))
    if error.errno is None or not temporary:
        return error
    return OSError(error.errno, error.strerror or os.strerror(error.errno), str(path))


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


def atomic_write_files(files: Mapping[str | Path, bytes | str]) -> list[Path]:
    """Writes several files together: afterwards either every one holds its new content or none changed.

    All contents are first written to temporary files beside their targets (a full disk shows up here, before
    anything changed); existing targets are then kept as hard links (or copies) and the temporary files renamed
    into place. A failure removes the temporary files and the folders this call created, and puts the previous
    files back. OS errors name the target file, not a temporary one.

    Args:
        files: target path -> content (str is written as UTF-8).

    Returns:
        The target paths, in order.
    """
    targets = [(Path(path), data.encode("utf-8") if isinstance(data, str) else bytes(data))
               for path, data in files.items()]
    created: list[Path] = []  # folders this call made, deepest first
    staged: list[tuple[Path, Path]] = []  # (temporary, target)
    backups: list[tuple[Path, Path]] = []  # (backup, target) of targets that existed
    replaced: list[tuple[Path, Path | None]] = []  # (target, its backup or None when it is new)
    current = targets[0][0] if targets else Path()
    try:
        for current, data in targets:
            missing = [folder for folder in (current.parent, *current.parent.parents) if not folder.exists()]
            current.parent.mkdir(parents=True, exist_ok=True)
            created = missing + [folder for folder in created if folder not in missing]
            staged.append((_new_file(current.parent, f".{current.stem}.", "".join(current.suffixes) or ".tmp"),
                           current))
            staged[-1][0].write_bytes(data)
        for _, current in staged:
            if current.exists():
                backup = _new_file(current.parent, f".{current.stem}.", ".previous")
                backups.append((backup, current))
                try:
                    backup.unlink()
                    os.link(current, backup)
                except OSError:
                    shutil.copyfile(current, backup)
        kept = dict((target, backup) for backup, target in backups)
        for temporary, current in staged:
            os.replace(temporary, current)
            replaced.append((current, kept.get(current)))
    except BaseException as error:
        for current_target, backup in reversed(replaced):
            with contextlib.suppress(OSError):
                if backup is None:
                    current_target.unlink()
                else:
                    os.replace(backup, current_target)
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
        for backup, _ in backups:
            backup.unlink(missing_ok=True)
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(error, OSError):
            raise _naming(error, current) from None
        raise
    for backup, _ in backups:
        backup.unlink(missing_ok=True)
    return [target for target, _ in targets]


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


def quiet_import(module: str) -> Any:
    """Imports ``module`` and undoes what the import wrote into ``os.environ``.

    MONAI's import sets ``KMP_DUPLICATE_LIB_OK``, ``KMP_INIT_AT_FORK`` and ``CUBLAS_WORKSPACE_CONFIG`` for the
    whole process; the library must not change process-wide state, so MONAI is imported through here.
    """
    import importlib

    saved = dict(os.environ)
    try:
        return importlib.import_module(module)
    finally:
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        for key, value in saved.items():
            if os.environ.get(key) != value:
                os.environ[key] = value

