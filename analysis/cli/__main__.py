"""``python -m analysis.cli``: the ``peersim`` console script."""

import sys

from analysis.cli.commands import main

sys.exit(main())
