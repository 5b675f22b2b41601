"""The ``peersim`` command line: one module per command, shared options in ``common``."""

from analysis.cli.main import main

__all__ = ["main"]
