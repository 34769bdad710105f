"""Reading and writing interval tables (CSV), with errors that name the file, line and column.

Columns: ``subject,video,onset,offset,type,emotion`` and, for predictions, optionally
``score``. Header names are matched case-insensitively; extra columns are ignored. subject
and video stay strings ("0101" keeps its zero); line numbers count the header as line 1.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from ..utils import UserError, atomic_write_text
from ..utils.io import PathLike
from .intervals import TYPE_ALIASES, Interval, normalise_type

COLUMNS = ("subject", "video", "onset", "offset", "type", "emotion")
SCORE = "score"


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        # utf-8-sig: spreadsheet exports often start with a byte-order mark.
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read ({err})") from None


def _header_index(path: Path, header: Optional[List[str]], require_score: bool) -> Dict[str, int]:
    """Column name -> field index; the first of duplicate names wins."""
    required = COLUMNS + ((SCORE,) if require_score else ())
    if header is None:
        raise UserError(f"{path}: empty file (expected a header with the columns {','.join(required)})")
    index: Dict[str, int] = {}
    for i, name in enumerate(header):
        index.setdefault(name.strip().lower(), i)
    missing = [c for c in required if c not in index]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}; required: {','.join(required)}")
    return index


def _integer(where: str, column: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise UserError(f"{where}, column '{column}': {value!r} is not an integer") from None


def _parse_row(where: str, row: List[str], index: Dict[str, int]) -> Interval:
    cells = {}
    for column in COLUMNS + ((SCORE,) if SCORE in index else ()):
        if index[column] >= len(row):
            raise UserError(f"{where}, column '{column}': missing (the row has {len(row)} fields)")
        cells[column] = row[index[column]].strip()
    for column in ("subject", "video"):
        if not cells[column]:
            raise UserError(f"{where}, column '{column}': empty")
    onset = _integer(where, "onset", cells["onset"])
    offset = _integer(where, "offset", cells["offset"])
    if onset > offset:
        raise UserError(f"{where}, columns 'onset'/'offset': onset {onset} > offset {offset}")
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
    return Interval(cells["subject"], cells["video"], onset, offset, kind, cells["emotion"], score)


def _nonblank(row: List[str]) -> bool:
    return any(cell.strip() for cell in row)


def read_intervals_csv(path: PathLike, require_score: bool = False) -> List[Interval]:
    """The intervals of a ground-truth or prediction CSV, in file order.

    Without a ``score`` column every score is 1.0 (unless ``require_score``). Raises
    :class:`~visionattn.utils.UserError` naming the file, line and column for a missing or
    empty file, a missing column, an empty subject/video, a non-integer onset/offset,
    onset > offset, an unknown type or a non-numeric score. Blank lines are skipped.
    """
    path = Path(path)
    reader = csv.reader(io.StringIO(_read_text(path)))
    out = []
    try:
        index = _header_index(path, next(filter(_nonblank, reader), None), require_score)
        for row in filter(_nonblank, reader):
            # line_num is the file line the row ended on (quoted fields may span lines).
            out.append(_parse_row(f"{path}, line {reader.line_num}", row, index))
    except csv.Error as err:
        raise UserError(f"{path}, line {reader.line_num}: malformed CSV ({err})") from None
    return out


def write_intervals_csv(path: PathLike, intervals: Iterable[Interval], score: bool = True) -> None:
    """Write intervals as a CSV that :func:`read_intervals_csv` reads back unchanged: with a
    ``score`` column for predictions, without it (``score=False``) for ground truth.

    The file is replaced atomically, so a reader never sees half of it.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS + ((SCORE,) if score else ()))
    for x in intervals:
        row = [x.subject, x.video, x.onset, x.offset, x.type, x.emotion]
        # repr() of a float reads back as the same float.
        writer.writerow(row + [repr(float(x.score))] if score else row)
    atomic_write_text(path, buf.getvalue())
