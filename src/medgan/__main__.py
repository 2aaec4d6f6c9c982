"""``python -m medgan``: the command line, as ``torchrun -m medgan`` starts it on every rank.

Under torchrun, ``record`` writes an uncaught exception of a rank to the file torchrun's elastic agent reads, so
the job's failure summary shows that rank's traceback (user errors are one ``error:`` line and exit status 2).
"""

import os
import sys

from medgan.cli import main


def run() -> int:
    # Before torch loads (record's import loads it): see medgan.cli.main.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if "TORCHELASTIC_RUN_ID" in os.environ:
        from torch.distributed.elastic.multiprocessing.errors import record

        return record(main)()
    return main()


if __name__ == "__main__":
    sys.exit(run())
