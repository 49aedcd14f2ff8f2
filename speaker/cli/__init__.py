"""The `speaker` command line."""

from speaker.cli.main import main

__all__ = ["main"]
