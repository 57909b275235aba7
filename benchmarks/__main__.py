"""``python -m benchmarks``: run the suite (``--help`` for the options)."""

import sys

from benchmarks._suite import main

sys.exit(main())
