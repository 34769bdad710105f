#!/usr/bin/env python
"""Rebuild the FEDN model that ships in the package (visionattn/weights/fedn_synthetic.pt).

    make bundled-model            # or: .venv/bin/python tools/build_bundled_model.py

Trains FEDN with the recipe of `visionattn benchmark-fedn`'s "FEDN" row (the synthetic recipe:
configs/fedn/base.yaml + configs/fedn/synthetic.yaml, default features) on the split the shipped
file was made with (10 subjects, the last 2 held out; the benchmark now holds out 4 of 14),
scores the held-out subjects, and writes the best checkpoint's detector record with its
provenance (recipe, training data, held-out figures, weights digest) into the package.
Resumable: rerun with the same --work.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from visionattn.benchmarks.fedn_bundled import build  # noqa: E402
from visionattn.utils import UserError  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="outputs/bundled_model", help="dataset, features and runs (resumed)")
    parser.add_argument("--out", default=None, help="where to write the model (default: the package's file)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic dataset seed")
    args = parser.parse_args()
    try:
        build(Path(args.work), args.out, args.seed)
    except UserError as err:
        print(f"build_bundled_model: error: {err}", file=sys.stderr)
        sys.exit(2)
