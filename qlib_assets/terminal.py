"""The console the command prints to."""

import sys

from rich.console import Console

# Piped output (make, CI logs) would otherwise wrap tables at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 120)
