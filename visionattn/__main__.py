"""``python -m visionattn``: the ``visionattn`` command."""
import sys

from .cli import main

sys.exit(main())
