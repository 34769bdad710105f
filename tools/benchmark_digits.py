#!/usr/bin/env python
"""Same as `python -m visionattn.benchmarks.cls_digits`: no attention / SE / ECA / MCA-E / MCA-S
trained on scikit-learn's digits (real 8x8 images upscaled to 32x32) on the CPU.

    python tools/benchmark_digits.py --out outputs/cls_digits --epochs 15 --seeds 3
"""
import sys

from visionattn.benchmarks.cls_digits import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
