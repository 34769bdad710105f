#!/usr/bin/env python
"""Same as `visionattn benchmark`: ResNet-50 with SE / ECA / MCA-E / MCA-S / naive MCA-S."""
import sys

from visionattn.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", *sys.argv[1:]]))
