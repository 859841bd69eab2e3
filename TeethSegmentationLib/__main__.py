"""``python -m TeethSegmentationLib`` is the ``teethseg`` command line."""

import sys

from TeethSegmentationLib.cli import main

sys.exit(main())
