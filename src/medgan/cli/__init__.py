"""The ``medgan`` command line: parse -> typed config -> call the library. No logic lives only here.

User errors (MedganError) print as one line ``error: <file>: <problem>`` and exit with status 2. Modules:
``parser`` (every command's flags), ``training`` (train, demo, info), ``commands`` (sample, translate, bundle),
``evaluation`` (evaluate, audit, utility, segutility). Building the parser imports no torch (``medgan --help`` is
instant). Only ``main`` sets process options (``OMP_WAIT_POLICY``; SIGTERM raising ``Terminated`` while a command
runs, so a killed run cleans up as after Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import os
import signal
import sys
import threading
from typing import Callable, Iterator, Sequence

from medgan.errors import MedganError

from medgan.cli.parser import build_parser
from medgan.cli.training import launch_train, resolve_train_config

EXIT_USER_ERROR = 2
# Write failures the user's machine causes (a full disk, a quota, a read-only or forbidden folder): printed as one
# line naming the file. Writes go through medgan.utils.atomic_path, so nothing half-written is left behind.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})

__all__ = ["build_parser", "main", "resolve_train_config"]


class Terminated(BaseException):
    """SIGTERM (a batch system ending the job, ``kill PID``), raised where the process is, so that cleanup runs as
    for Ctrl-C: a new run killed before its first checkpoint leaves no folder."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises ``Terminated`` while the command runs (a second SIGTERM kills at once); the previous
    handler comes back afterwards. Only in the main thread, where Python delivers signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``medgan`` console script."""
    # Idle OpenMP threads sleep instead of spinning: on a small shared CPU, spinning threads of one process
    # steal the cores the others need (5-20x slowdowns measured on 2 cores). Must be set before torch loads,
    # so here, first: this module imports torch only inside the functions below. Only the entry point sets
    # process options; importing medgan (e.g. in a notebook) leaves the environment alone.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    if args.command == "train" and args.nproc > 1 and "LOCAL_RANK" not in os.environ:
        arguments = list(sys.argv[1:] if argv is None else argv)
        handler = functools.partial(launch_train, argv=arguments)  # checks, then execs torchrun
    try:
        with _sigterm_raises():
            return handler(args)
    except MedganError as error:
        print(f"error: {error.one_line()}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as error:
        if error.errno not in WRITE_ERRNOS:
            raise  # any other OS error is a bug until a reader or writer turns it into a MedganError
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}{os.strerror(error.errno).lower()}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("terminated", file=sys.stderr)
        return 128 + signal.SIGTERM

