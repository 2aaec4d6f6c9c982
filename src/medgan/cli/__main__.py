"""``python -m medgan.cli``: the same as the ``medgan`` console script."""

import sys

from medgan.cli import main

if __name__ == "__main__":  # worker processes started by spawn (medgan prepare) import this module too
    sys.exit(main())
