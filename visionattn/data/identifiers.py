"""Names of videos and numbers of frames, shared by every cache, split and prediction file.

A video is named ``<subject>_<video>`` in caches and records. Frame numbers are the
annotation files' own: a frame folder keeps the numbers in its file names (CAS(ME)^3 from
anywhere, with gaps); a video file is read by 0-based position and its annotations count from
the dataset's ``first_frame`` (1 for CAS(ME)^2 and SAMM-LV).
"""
from __future__ import annotations

import numpy as np

from .frames import expand_ranges


def video_id(subject: str, video: str) -> str:
    """The name of a subject's video in caches: ``s15`` + ``0101`` -> ``s15_0101``."""
    return f"{subject}_{video}"


def annotated_frame_numbers(meta: dict, first_frame: int) -> np.ndarray:
    """The annotation frame number of each cached row ``(T,)``, from a cache's per-video
    metadata (:func:`visionattn.data.cache.cache_face_rows`)."""
    numbers = np.array(expand_ranges(meta["frame_ranges"]))
    return numbers + first_frame if meta["kind"] == "video" else numbers


def rows_of(frame_numbers: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Row index of each annotation frame number: the row of that frame, or for a number between
    rows (a resampled video: SAMM-LV's 200 fps at 30 model steps a second) the row nearest to it,
    the earlier one on a tie, so onsets and offsets move by at most half a step either way."""
    frame_numbers, frames = np.asarray(frame_numbers), np.asarray(frames)
    after = np.clip(np.searchsorted(frame_numbers, frames), 0, len(frame_numbers) - 1)
    before = np.clip(after - 1, 0, None)
    nearer_before = np.abs(frames - frame_numbers[before]) <= np.abs(frame_numbers[after] - frames)
    return np.where(nearer_before, before, after)


def cut_rows(meta: dict) -> np.ndarray:
    """Rows of a cached video right after a shot cut, from its metadata's face report (the face
    front end numbers frames as the frames reader does: model steps when the video was
    resampled, positions in a video file, image numbers in a folder)."""
    cuts = np.asarray(meta.get("faces", {}).get("cuts", []), dtype=np.int64)
    if meta.get("step_fps") or meta["kind"] == "video" or not len(cuts):
        return cuts
    return np.searchsorted(np.array(expand_ranges(meta["frame_ranges"])), cuts)
