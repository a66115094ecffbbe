"""``python -m sscity`` runs the ``sscity`` command."""

import sys

from .cli import main

# Guarded: grading workers are spawned processes that import the main module again.
if __name__ == "__main__":
    sys.exit(main())
