"""``python -m methods``: run one trial from the command line (same as ``monosweep trial``)."""

import sys

from methods.trial.cli import main

sys.exit(main())
