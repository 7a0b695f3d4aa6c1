"""``python -m tonuslab``."""

import sys

from tonuslab.cli import main

sys.exit(main())
