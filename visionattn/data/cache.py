"""Per-video arrays on disk (face crops, per-frame features), written once and memory-mapped.

Layout: ``root/<settings_key>/<video_id>.npy`` of shape ``(n_frames, *shape_tail)``, with
``root/<settings_key>/settings.json`` holding the settings in plain text and
``<video_id>.json`` holding per-video metadata (fps, face report...). Different settings give a
different folder, so a cache is never read back with the wrong pipeline.

Writing is atomic and resumable: rows go into ``<video_id>.npy.partial`` (an ``.npy`` memmap of
the final shape), and ``<video_id>.npy.progress.json`` records how many rows are on disk, updated
only after the rows are flushed. The ``.npy`` appears, by ``os.replace``, only once complete; a
writer opened again after an interruption starts at the recorded row.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

from visionattn.data.frames import DEFAULT_FPS, PathLike, index_ranges, probe
from visionattn.data.stream import face_batches, model_rate_frames, rate_differs
from visionattn.utils import UserError, atomic_path, atomic_write_json

_COPY_ROWS = 1024  # rows per block when copying a truncated partial file; bounds memory


def settings_key(settings: Mapping[str, Any]) -> str:
    """Stable short hash of JSON-serialisable settings (key order does not matter)."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


class ArrayCache:
    """Arrays keyed by video id under ``root/<settings_key(settings)>/``."""

    def __init__(self, root: PathLike, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self.key = settings_key(self.settings)
        self.folder = Path(root) / self.key

    def path(self, video_id: str) -> Path:
        """Where the finished array of ``video_id`` lives (``<video_id>.npy``)."""
        if not video_id or video_id.startswith(".") or any(s in video_id for s in ("/", "\\", os.sep)):
            raise UserError(f"{video_id!r}: video id must be a plain file name (no '/', not starting with '.')")
        return self.folder / f"{video_id}.npy"

    def meta_path(self, video_id: str) -> Path:
        return self.path(video_id).with_suffix(".json")

    def exists(self, video_id: str) -> bool:
        return self.path(video_id).is_file()

    def load(self, video_id: str, mmap: bool = True) -> np.ndarray:
        """The array ``(n_frames, *shape_tail)``; memory-mapped read-only unless ``mmap=False``."""
        path = self.path(video_id)
        if not path.is_file():
            raise UserError(f"{path}: no cached array for video {video_id!r}")
        return np.load(path, mmap_mode="r" if mmap else None)

    def write_meta(self, video_id: str, meta: Mapping[str, Any]) -> None:
        atomic_write_json(self.meta_path(video_id), dict(meta))

    def load_meta(self, video_id: str) -> dict[str, Any]:
        path = self.meta_path(video_id)
        if not path.is_file():
            raise UserError(f"{path}: no cached metadata for video {video_id!r}")
        return json.loads(path.read_text(encoding="utf-8"))

    def writer(
        self, video_id: str, shape_tail: Sequence[int], dtype: Any, n_frames: int
    ) -> "CacheWriter":
        """A (resumed, if progress matches) writer of ``(n_frames, *shape_tail)`` rows."""
        self._record_settings()
        return CacheWriter(self, video_id, shape_tail, dtype, n_frames)

    def write(
        self,
        video_id: str,
        shape_tail: Sequence[int],
        dtype: Any,
        n_frames: int,
        chunks: Iterable[np.ndarray],
    ) -> np.ndarray:
        """Fill the array from ``chunks`` (each ``(k, *shape_tail)``) and return it memory-mapped.

        ``chunks`` always starts at row 0: after an interruption the rows already on disk are
        drawn from it and dropped. Use ``writer`` and its ``start_row`` to avoid recomputing them.
        """
        with self.writer(video_id, shape_tail, dtype, n_frames) as writer:
            skip = writer.start_row
            for chunk in chunks:
                chunk = np.asarray(chunk)
                dropped = min(skip, len(chunk))
                skip -= dropped
                if dropped < len(chunk):
                    writer.append(chunk[dropped:])
            if writer.rows != n_frames:
                raise ValueError(f"{self.path(video_id)}: chunks gave {writer.rows} rows, expected {n_frames}")
            return writer.finish()

    def _record_settings(self) -> None:
        path = self.folder / "settings.json"
        if not path.is_file():
            atomic_write_json(path, self.settings)


class CacheWriter:
    """Fills ``<video_id>.npy.partial`` row by row; ``finish`` publishes it as ``<video_id>.npy``.

    ``start_row`` is where this writer resumed (0 when fresh); ``state`` is the caller's state
    saved with the last ``append`` (e.g. a face pipeline's), to continue exactly where it was.
    As a context manager it finishes on a clean exit once every row is written, and otherwise
    leaves the partial file for the next run.
    """

    def __init__(
        self, cache: ArrayCache, video_id: str, shape_tail: Sequence[int], dtype: Any, n_frames: int
    ) -> None:
        if n_frames < 1:
            raise ValueError(f"n_frames must be >= 1, got {n_frames}")
        self.cache = cache
        self.video_id = video_id
        self.shape = (int(n_frames), *(int(s) for s in shape_tail))
        self.dtype = np.dtype(dtype)
        self.final = cache.path(video_id)
        self.partial = self.final.with_name(self.final.name + ".partial")
        self.progress = self.final.with_name(self.final.name + ".progress.json")
        self.state: Optional[Any] = None
        self._finished = False
        self._mm: Optional[np.memmap] = None
        self.rows = self._open()
        self.start_row = self.rows

    def _record(self, rows: int) -> dict[str, Any]:
        return {
            "settings_key": self.cache.key,
            "shape": list(self.shape),
            "dtype": self.dtype.str,
            "rows": rows,
            "state": self.state,
        }

    def _open(self) -> int:
        """Reopen a matching partial file and return its row count, or start a new one (0)."""
        record = self._read_progress()
        if record is not None and self.partial.is_file() and self._matches(record):
            mm = np.lib.format.open_memmap(self.partial, mode="r+")
            if mm.shape == self.shape and mm.dtype == self.dtype:
                self._mm = mm
                self.state = record.get("state")
                return int(record["rows"])
            del mm
        if record is not None or self.partial.exists():
            warnings.warn(f"{self.partial}: progress does not match this write; starting over", RuntimeWarning)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self._mm = np.lib.format.open_memmap(self.partial, mode="w+", dtype=self.dtype, shape=self.shape)
        atomic_write_json(self.progress, self._record(0))
        return 0

    def _matches(self, record: dict[str, Any]) -> bool:
        fresh = self._record(0)
        rows = record.get("rows")
        return (
            all(record.get(k) == fresh[k] for k in ("settings_key", "shape", "dtype"))
            and isinstance(rows, int)
            and 0 <= rows <= self.shape[0]
        )

    def _read_progress(self) -> Optional[dict[str, Any]]:
        try:
            record = json.loads(self.progress.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def append(self, rows: np.ndarray, state: Optional[Any] = None) -> None:
        """Write ``rows`` (``(k, *shape_tail)``) after those already written; ``state`` (JSON-ready)
        is saved with the row count and given back as ``state`` on resume."""
        if self._mm is None:
            raise RuntimeError(f"{self.partial}: writer is closed")
        rows = np.asarray(rows)
        if rows.shape[1:] != self.shape[1:]:
            raise ValueError(f"{self.final}: rows of shape {rows.shape[1:]}, expected {self.shape[1:]}")
        end = self.rows + len(rows)
        if end > self.shape[0]:
            raise ValueError(f"{self.final}: {end} rows exceed the {self.shape[0]} allocated")
        self._mm[self.rows : end] = rows
        # Data reaches the disk before the progress file claims it, so a crash between the two
        # only loses rows, never records garbage as complete.
        self._mm.flush()
        self.rows = end
        self.state = state
        atomic_write_json(self.progress, self._record(end))

    def finish(self, truncate: bool = False) -> np.ndarray:
        """Publish the array and return it memory-mapped. With ``truncate``, a short write (a
        video that ended early) is published with only the rows written."""
        if self._mm is None:
            raise RuntimeError(f"{self.partial}: writer is closed")
        if self.rows < self.shape[0] and not (truncate and self.rows > 0):
            raise ValueError(f"{self.final}: only {self.rows} of {self.shape[0]} rows written")
        if self.rows == self.shape[0]:
            self.close()
            os.replace(self.partial, self.final)
        else:
            self._publish_first_rows()
            self.close()
            self.partial.unlink()
        self.progress.unlink(missing_ok=True)
        self._finished = True
        return self.cache.load(self.video_id)

    def _publish_first_rows(self) -> None:
        assert self._mm is not None
        with atomic_path(self.final, suffix=".npy") as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=self.dtype, shape=(self.rows, *self.shape[1:]))
            for begin in range(0, self.rows, _COPY_ROWS):
                out[begin : begin + _COPY_ROWS] = self._mm[begin : min(begin + _COPY_ROWS, self.rows)]
            out.flush()
            del out

    def close(self) -> None:
        """Release the memmap; an unfinished partial file stays for a later resume."""
        if self._mm is not None:
            self._mm.flush()
            self._mm = None

    def __enter__(self) -> "CacheWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None and not self._finished and self.rows == self.shape[0]:
            self.finish()
        self.close()


def cache_face_crops(
    source: PathLike,
    cache: ArrayCache,
    video_id: str,
    pipeline: Any,
    chunk: int = 256,
    source_fps: float = DEFAULT_FPS,
    model_fps: Optional[float] = None,
) -> tuple[np.ndarray, Any]:
    """Face crops of every frame of ``source`` as a cached ``(n_frames, size, size, 3)`` uint8
    memmap, plus the face report; computed once, resumed after an interruption.

    ``pipeline`` (a face front end: anything whose ``process`` yields items with an ``image``
    and has a ``size``, such as :class:`visionattn.faces.haar.FacePipeline`) must be fresh, and
    its ``settings()`` should be part of the cache's settings so that different crops never share
    a cache. See :func:`cache_face_rows` for ``source_fps`` and ``model_fps``.
    """
    tail = (pipeline.size, pipeline.size, 3)
    return cache_face_rows(source, cache, video_id, pipeline, None, tail, np.uint8, chunk, source_fps, model_fps)


def _append(writer: "CacheWriter", convert: Callable[[list], np.ndarray], items: list, state: Any) -> None:
    writer.append(convert(items), state=state)


def cache_face_rows(
    source: PathLike,
    cache: ArrayCache,
    video_id: str,
    pipeline: Any,
    encode: Optional[Callable[[list], np.ndarray]],
    row_shape: Sequence[int],
    dtype: Any,
    chunk: int = 256,
    source_fps: float = DEFAULT_FPS,
    model_fps: Optional[float] = None,
) -> tuple[np.ndarray, Any]:
    """One cached row per frame: each chunk of the items the face front end ``pipeline`` yields
    (one per frame, with an ``image`` crop) becomes rows ``(k, *row_shape)`` by ``encode`` (e.g.
    a frame encoder's features); ``encode=None`` stores the crops themselves. Returns the rows
    and the pipeline's report (``type(pipeline.report)``).

    ``source_fps``: the source's own rate where it states none (an image folder, or a video
    without a plausible rate). ``model_fps``: the rate of the rows; frames come from the stream
    detection reads too (:func:`~visionattn.data.stream.model_rate_frames`), so at another rate
    than the source's, rows are the frames nearest to the grid ``k / model_fps``, and a 200 fps
    dataset trains at a lower rate; the metadata's ``frame_ranges`` name the source frame of
    every row, so annotations map onto rows, and predictions back onto source frames, exactly.
    """
    report_type = type(pipeline.report)
    if cache.exists(video_id):
        return cache.load(video_id), report_type.from_dict(cache.load_meta(video_id)["faces"])
    info = probe(source, fps=source_fps)
    regridded = rate_differs(info, model_fps)
    total = info.frame_count if not regridded else int(math.floor(info.frame_count * model_fps / info.fps)) + 1
    convert = encode if encode is not None else (lambda items: np.stack([item.image for item in items]))
    sources: list[int] = []  # source frame index of each row
    with cache.writer(video_id, row_shape, dtype, total) as writer:
        if writer.start_row > 0:
            pipeline.load_state_dict(writer.state)

        def labelled() -> Iterable[tuple[int, np.ndarray]]:
            # the front end numbers rows by step on the model grid, by source frame otherwise
            for step, index, _, image in model_rate_frames(info, model_fps, start=writer.start_row, stop=total):
                sources.append(index)
                if image is not None:  # resuming: earlier steps are on disk already
                    yield (step if regridded else index), image

        face_batches(pipeline, labelled(), chunk, functools.partial(_append, writer, convert), resumable=True)
        # iter_timed_frames yields a folder's image numbers and a video file's positions
        indices = [int(n) for n in sources[: writer.rows]]
        # Metadata first: a finished .npy then always has its .json next to it.
        cache.write_meta(
            video_id,
            {
                "video_id": video_id,
                "source": str(info.path),
                "kind": info.kind,
                "fps": info.fps,
                "step_fps": model_fps if regridded else None,  # the model rate (key kept for old caches)
                "frame_count": writer.rows,
                "width": info.width,
                "height": info.height,
                "frame_ranges": index_ranges(list(indices)),
                "faces": pipeline.report.to_dict(),
            },
        )
        array = writer.finish(truncate=True)
    return array, pipeline.report
