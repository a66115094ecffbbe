"""``python -m sscity`` runs the ``sscity`` command."""

import sys

from .cli import main

sys.exit(main())
