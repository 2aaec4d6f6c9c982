"""``python -m medgan.cli``: the same as the ``medgan`` console script."""

import sys

from medgan.cli import main

sys.exit(main())
