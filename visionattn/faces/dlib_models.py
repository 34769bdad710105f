"""dlib's frontal face detector and 68-point shape predictor, loaded once per process.

The predictor's weights ship in the ``face_recognition_models`` package
(``face_recognition_models/models/shape_predictor_68_face_landmarks.dat``, 100 MB). That
package is never imported (its ``__init__`` needs ``pkg_resources``, gone from recent
setuptools): its folder is located with ``importlib.util.find_spec``. A user may pass another
predictor file of the same 68-point scheme instead.

Licence: the 68-point model was trained on iBUG 300-W, whose terms exclude commercial use.
"""
from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import Any, Optional, Union

from visionattn.utils import UserError

MODELS_PACKAGE = "face_recognition_models"
PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"

_lock = threading.Lock()
_predictors: dict[str, Any] = {}
_detector: Any = None


def _dlib() -> Any:
    try:
        import dlib
    except ImportError:
        raise UserError("dlib: not installed; run `make install` (it installs dlib-bin)") from None
    return dlib


def models_folder() -> Optional[Path]:
    """``face_recognition_models/models`` on disk, or None when the package is not installed."""
    try:
        spec = importlib.util.find_spec(MODELS_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def predictor_path(path: Optional[Union[str, os.PathLike]] = None) -> Path:
    """The 68-point predictor file: ``path`` if given, else the one the models package ships.

    Raises ``UserError`` naming the file when it does not exist.
    """
    if path is not None:
        chosen = Path(path)
        if not chosen.is_file():
            raise UserError(f"{chosen}: no such shape predictor file")
        return chosen
    folder = models_folder()
    chosen = folder / PREDICTOR_68 if folder is not None else Path(MODELS_PACKAGE) / "models" / PREDICTOR_68
    if folder is None or not chosen.is_file():
        raise UserError(f"{chosen}: dlib's 68-point landmark model is missing; run `make install` "
                        f"(it installs the {MODELS_PACKAGE} package)")
    return chosen


def shape_predictor(path: Optional[Union[str, os.PathLike]] = None) -> Any:
    """The ``dlib.shape_predictor`` for ``predictor_path(path)``, loaded once per process per file
    (loading the 100 MB file takes about a second)."""
    file = str(predictor_path(path).resolve())
    with _lock:
        if file not in _predictors:
            dlib = _dlib()
            try:
                _predictors[file] = dlib.shape_predictor(file)
            except RuntimeError as exc:
                raise UserError(f"{file}: not a dlib shape predictor ({exc})") from None
        return _predictors[file]


def frontal_detector() -> Any:
    """dlib's HOG + linear SVM frontal face detector (its weights are built into dlib)."""
    global _detector
    with _lock:
        if _detector is None:
            _detector = _dlib().get_frontal_face_detector()
        return _detector
