"""Truthful reruns of ``visionattn detect``: what made a result, and its expensive signals kept.

A result records its ``inputs``: the video's identity (path, size, modification time) and
every setting that shaped it (method, model digest, feature settings digest, thresholds,
window, overlap, face choice, ground truth). A rerun reuses the outputs only when these are
unchanged, and otherwise says in a few words what changed (:func:`stale_reason`).

The expensive part of a detection, a detector's ``scan`` (tracking, features, the temporal
model, every scored candidate before thresholding), is kept in ``<out>/.cache/`` under a digest
of the video's identity and the settings that made it (:class:`ScanCache`), so a new threshold
re-scores in the time it takes to threshold and draw, without tracking the video again.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import numpy as np

from ..data.frames import VideoPart, probe
from ..utils import atomic_path
from ..utils.io import PathLike
from .detector import VideoScan


def video_identity(video: PathLike) -> Dict[str, Any]:
    """What tells one video (or frame folder) from another without reading it: its resolved
    path, size in bytes and modification time (a folder: its files' count, total size and
    newest modification time)."""
    path = Path(video)
    if path.is_dir():
        files = [p.stat() for p in path.iterdir() if p.is_file()]
        return {"path": str(path.resolve()), "files": len(files), "bytes": sum(f.st_size for f in files),
                "mtime_ns": max((f.st_mtime_ns for f in files), default=0)}
    stat = path.stat()
    return {"path": str(path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


# Settings whose change is worth naming with both values; the others are digests.
_SHOWN = ("method", "thresholds", "window", "overlap", "face", "fps")


def stale_reason(previous: Optional[Mapping[str, Any]], current: Mapping[str, Any]) -> Optional[str]:
    """Why outputs made with ``previous`` inputs do not answer for ``current`` ones (a few
    words), or None when they do. Inputs: ``{"video": identity, "settings": {...}, "gt": ...}``."""
    if not previous:
        return "no record of the settings that made the outputs"
    if previous.get("video", {}).get("path") != current["video"]["path"]:
        return "another video wrote them"
    if previous.get("video") != current["video"]:
        return "the video changed"
    old, new = previous.get("settings", {}), current["settings"]
    for key in list(new) + [k for k in old if k not in new]:
        if old.get(key) == new.get(key):
            continue
        if key == "thresholds" and isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
            return f"thresholds {_format(old[key])} -> {_format(new[key])}"
        if key in _SHOWN:
            return f"{key} {old.get(key)} -> {new.get(key)}"
        return f"the {key} changed"
    if previous.get("gt") != current.get("gt"):
        return "the ground truth changed"
    return None


def _format(thresholds: Mapping[str, float]) -> str:
    return ",".join(f"{k}={v:g}" for k, v in thresholds.items())


class ScanCache:
    """Detector scans on disk, one ``.npz`` per video and key, in ``root``.

    Args:
        root: the folder (created on the first save).
    """

    def __init__(self, root: PathLike) -> None:
        self.root = Path(root)

    def path(self, name: str, key: str) -> Path:
        """Where the scan of the clip named ``name`` (its output name, unique in a batch) is kept."""
        return self.root / f"{name}.{key}.npz"

    def load(self, name: str, video: PathLike, key: str, fps: float, part: VideoPart = VideoPart()
             ) -> Optional[VideoScan]:
        """The scan of ``video`` (output name ``name``) saved under ``key``, read as ``part``
        asked, or None (none saved, or unreadable: recomputed)."""
        path = self.path(name, key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            if str(arrays.pop("key")) != key:
                return None
            return VideoScan.from_arrays(probe(str(video), fps=part.fps or fps), fps, arrays, part)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return None

    def save(self, name: str, key: str, scan: VideoScan) -> Path:
        path = self.path(name, key)
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, key=np.array(key), **scan.to_arrays())
        return path
