"""The ``peersim`` command line: one module per command, shared options and the life
of a resumable command in ``common``."""

from analysis.cli.commands import build_parser, main

__all__ = ["build_parser", "main"]
