"""``python -m matcher.cli``: the same command as ``matcher``."""

from matcher.cli import main

main()
