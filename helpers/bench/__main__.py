"""``python -m helpers.bench``: see :mod:`helpers.bench.runner`."""

import sys

from helpers.bench.runner import main

sys.exit(main())
