"""``python -m helpers.pipeline run|params``: see :mod:`helpers.pipeline.run`."""

import sys

from helpers.pipeline.run import main

sys.exit(main())
