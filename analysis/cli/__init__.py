"""The ``peersim`` command line: one module per command, shared options and the life
of a resumable command in ``common``."""

from analysis.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
