"""``python -m kubesim``."""

import sys

from kubesim.harness.cli import main

sys.exit(main())
