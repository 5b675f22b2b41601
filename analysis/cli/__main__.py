"""``python -m analysis.cli``: the ``peersim`` console script."""

import sys

from analysis.cli.main import main

sys.exit(main())
