"""`python -m speaker` is the `speaker` command."""

from speaker.cli import main

main()
