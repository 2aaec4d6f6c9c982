"""The ``medgan`` command line: parse -> typed config -> call the library. No logic lives only here.

User errors (MedganError) print as one line ``error: <file>: <problem>`` and exit with status 2. Modules:
``parser`` (every command's flags), ``training`` (train, demo, info), ``commands`` (sample, translate, bundle),
``evaluation`` (evaluate, audit, utility, segutility). Only ``main`` sets process options.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from typing import Callable, Sequence

from medgan.errors import MedganError

from medgan.cli.parser import build_parser
from medgan.cli.training import resolve_train_config

EXIT_USER_ERROR = 2
# Write failures the user's machine causes (a full disk, a quota, a read-only or forbidden folder): printed as one
# line naming the file. Writes go through medgan.utils.atomic_path, so nothing half-written is left behind.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})

__all__ = ["build_parser", "main", "resolve_train_config"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``medgan`` console script."""
    # Idle OpenMP threads sleep instead of spinning: on a small shared CPU, spinning threads of one process
    # steal the cores the others need (5-20x slowdowns measured on 2 cores). Must be set before torch loads,
    # so here, first: this module imports torch only inside the functions below. Only the entry point sets
    # process options; importing medgan (e.g. in a notebook) leaves the environment alone.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train" and args.nproc > 1 and "LOCAL_RANK" not in os.environ:
        from medgan.training.distributed import torchrun_command

        command = torchrun_command(list(sys.argv[1:] if argv is None else argv), args.nproc)
        os.execv(command[0], command)  # torchrun replaces this process; its exit status is the job's
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
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

