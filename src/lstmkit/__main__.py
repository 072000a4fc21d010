"""``python -m lstmkit``: the ``lstmkit`` command."""

import sys

from .cli import main

sys.exit(main())
