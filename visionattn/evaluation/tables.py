"""Reading and writing interval tables (CSV), with errors that name the file, line and column.

Three layouts are read (header names matched case-insensitively, extra columns ignored):

- ours: ``subject,video,onset,offset,type,emotion`` and, for predictions, optionally ``score``;
- the official STRS script's: ``subject,video,onset,offset,emotion``, no ``type`` (the
  intervals are then untyped, :data:`~visionattn.evaluation.intervals.UNTYPED`);
- MEGC submissions: ``vid,pred_onset,pred_offset,type`` (``onset``/``offset`` also accepted),
  emotion and score optional. ``vid`` is ``subject_video`` (:func:`video_name`): it is matched
  against the ground truth's videos when they are given, else split at its last ``_``.

subject and video stay strings ("0101" keeps its zero); line numbers count the header as line 1.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from ..utils import UserError, atomic_write_text
from ..utils.io import PathLike
from .intervals import TYPE_ALIASES, UNTYPED, Interval, VideoKey, normalise_type, video_name

COLUMNS = ("subject", "video", "onset", "offset", "type", "emotion")
SCORE = "score"
OPTIONAL = ("type", SCORE)
MEGC_COLUMNS = ("vid", "pred_onset", "pred_offset", "type")
# Alternative header names of the MEGC layout -> the names used here.
_MEGC_NAMES = {"vid": "vid", "pred_onset": "onset", "onset": "onset", "pred_offset": "offset", "offset": "offset",
               "type": "type", "emotion": "emotion", "score": "score"}


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        # utf-8-sig: spreadsheet exports often start with a byte-order mark.
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read ({err})") from None


def _header_index(path: Path, header: Optional[List[str]], require_score: bool) -> Dict[str, int]:
    """Column name (ours) -> field index; the first of duplicate names wins. The MEGC layout's
    names are mapped to ours (``pred_onset`` -> ``onset``), ``vid`` kept."""
    layouts = (f"{','.join(c for c in COLUMNS if c != 'type')} (type, score optional) "
               f"or the MEGC {','.join(MEGC_COLUMNS)}")
    if header is None:
        raise UserError(f"{path}: empty file (expected a header: {layouts})")
    raw: Dict[str, int] = {}
    for i, name in enumerate(header):
        raw.setdefault(name.strip().lower(), i)
    if "vid" in raw and "subject" not in raw:
        index: Dict[str, int] = {}
        for name, i in raw.items():
            if name in _MEGC_NAMES:
                index.setdefault(_MEGC_NAMES[name], i)
        required = ("vid", "onset", "offset") + ((SCORE,) if require_score else ())
        names = {"onset": "pred_onset", "offset": "pred_offset"}
        missing = [names.get(c, c) for c in required if c not in index]
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(missing)}; MEGC layout: {','.join(MEGC_COLUMNS)}")
        return index
    required = tuple(c for c in COLUMNS if c != "type") + ((SCORE,) if require_score else ())
    missing = [c for c in required if c not in raw]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}; required: {','.join(COLUMNS)} "
                        f"(type may be left out, as the official STRS script does) or the MEGC layout "
                        f"{','.join(MEGC_COLUMNS)}")
    return raw


class _Videos:
    """``vid`` -> (subject, video): the ground truth's video named ``subject_video`` (exactly,
    else ignoring case), else the text split at its last ``_``."""

    def __init__(self, videos: Optional[Iterable[VideoKey]]):
        self.exact: Dict[str, VideoKey] = {}
        self.folded: Dict[str, VideoKey] = {}
        for key in sorted(set(videos or ())):
            self.exact.setdefault(video_name(*key), key)
            self.folded.setdefault(video_name(*key).lower(), key)

    def __call__(self, vid: str) -> VideoKey:
        if vid in self.exact:
            return self.exact[vid]
        if vid.lower() in self.folded:
            return self.folded[vid.lower()]
        subject, _, video = vid.rpartition("_")
        return (subject, video) if subject else (vid, "")


def _integer(where: str, column: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise UserError(f"{where}, column '{column}': {value!r} is not an integer") from None


def _parse_row(where: str, row: List[str], index: Dict[str, int], videos: _Videos) -> Interval:
    cells = {}
    for column in index:
        if column not in ("vid",) + COLUMNS + (SCORE,):
            continue
        if index[column] >= len(row):
            if column in ("emotion",) + OPTIONAL and "vid" in index:
                continue  # a short MEGC row: optional columns left out
            raise UserError(f"{where}, column '{column}': missing (the row has {len(row)} fields)")
        cells[column] = row[index[column]].strip()
    if "vid" in index:
        if not cells["vid"]:
            raise UserError(f"{where}, column 'vid': empty")
        subject, video = videos(cells["vid"])
    else:
        for column in ("subject", "video"):
            if not cells[column]:
                raise UserError(f"{where}, column '{column}': empty")
        subject, video = cells["subject"], cells["video"]
    onset = _integer(where, "onset", cells["onset"])
    offset = _integer(where, "offset", cells["offset"])
    if onset > offset:
        raise UserError(f"{where}, columns 'onset'/'offset': onset {onset} > offset {offset}")
    kind = UNTYPED
    if "type" in cells:
        kind = normalise_type(cells["type"])
        if kind is None:
            raise UserError(f"{where}, column 'type': unknown value {cells['type']!r} "
                            f"(allowed, any case: {', '.join(TYPE_ALIASES)})")
    score = 1.0
    if SCORE in cells:
        try:
            score = float(cells[SCORE])
        except ValueError:
            score = math.nan
        if not math.isfinite(score):
            raise UserError(f"{where}, column 'score': {cells[SCORE]!r} is not a finite number")
    return Interval(subject, video, onset, offset, kind, cells.get("emotion", ""), score)


def _nonblank(row: List[str]) -> bool:
    return any(cell.strip() for cell in row)


def read_intervals_csv(path: PathLike, require_score: bool = False,
                       videos: Optional[Iterable[VideoKey]] = None) -> List[Interval]:
    """The intervals of a ground-truth or prediction CSV in any of the three layouts, in file order.

    Without a ``score`` column every score is 1.0 (unless ``require_score``); without a
    ``type`` column the intervals are untyped. ``videos``: the ground truth's
    ``(subject, video)`` keys, which a MEGC ``vid`` is matched against. Raises
    :class:`~visionattn.utils.UserError` naming the file, line and column for a missing or
    empty file, a missing column, an empty subject/video/vid, a non-integer onset/offset,
    onset > offset, an unknown type or a non-numeric score. Blank lines are skipped.
    """
    path = Path(path)
    reader = csv.reader(io.StringIO(_read_text(path)))
    names = _Videos(videos)
    out = []
    try:
        index = _header_index(path, next(filter(_nonblank, reader), None), require_score)
        for row in filter(_nonblank, reader):
            # line_num is the file line the row ended on (quoted fields may span lines).
            out.append(_parse_row(f"{path}, line {reader.line_num}", row, index, names))
    except csv.Error as err:
        raise UserError(f"{path}, line {reader.line_num}: malformed CSV ({err})") from None
    return out


def write_intervals_csv(path: PathLike, intervals: Iterable[Interval], score: bool = True) -> None:
    """Write intervals as a CSV that :func:`read_intervals_csv` reads back unchanged: with a
    ``score`` column for predictions, without it (``score=False``) for ground truth.

    Untyped intervals (all of them) are written without the type column.
    The file is replaced atomically, so a reader never sees half of it.
    """
    intervals = list(intervals)
    typed = not intervals or any(x.type != UNTYPED for x in intervals)
    columns = COLUMNS if typed else tuple(c for c in COLUMNS if c != "type")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns + ((SCORE,) if score else ()))
    for x in intervals:
        row = [x.subject, x.video, x.onset, x.offset] + ([x.type] if typed else []) + [x.emotion]
        # repr() of a float reads back as the same float.
        writer.writerow(row + [repr(float(x.score))] if score else row)
    atomic_write_text(path, buf.getvalue())
