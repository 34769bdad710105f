"""The expression table every loader produces, the vocabularies it uses, workbook reading,
and leave-one-subject-out folds.

This module is the one definition of the expression types (:data:`EXPRESSION_TYPES`) and
the 4 MEGC emotion classes (:data:`EMOTIONS4`); models, training and evaluation import them
from here.

One row per expression. Columns (pandas dtypes):

==============  ========  ==========================================================
column          dtype     meaning
==============  ========  ==========================================================
dataset         str       ``casme2``, ``casme3a``, ``samm``, ``synthetic``
subject         str       subject id: ``s15`` (CAS(ME)^2), ``006`` (SAMM-LV), ``spNO.1``
                          (CAS(ME)^3, always spelled ``spNO.<n>``)
video           str       video id within the subject: ``0101``, ``1`` (folder ``006_1``), ``a``
onset           int64     first frame of the expression (the workbook's own numbering)
apex            int64     apex frame
offset          int64     last frame (inclusive)
type            str       ``micro`` or ``macro``
emotion         str       expert emotion, 4 classes: negative / positive / surprise / others
                          (empty where the dataset gives none: SAMM-LV, CAS(ME)^3 macro)
emotion_raw     str       the dataset's own expert label, lower case
self_report     str       the subject's self-reported emotion (CAS(ME)^2), else empty
aus             str       action units as written (``4+10+14``)
fps             float64   frame rate of the video
row             str       where the row came from: ``file, sheet 'x', row n`` (Excel's row number)
n_frames        int64     frames in the video                      } added by attaching the
source          str       a folder of images or a video file       } frames
first_frame     int64     number of the video's first frame        } (:data:`FRAME_COLUMNS`)
==============  ========  ==========================================================

A table read from workbooks alone has :data:`ANNOTATION_COLUMNS`; attaching the frame
sources (:func:`visionattn.data.datasets.attach_sources`) gives :data:`COLUMNS`. The
quirks a reader resolved are in ``table.attrs["quirks"]`` (``{what was done: rows}``).

A malformed row (a frame number missing or not a number, onset after apex or offset, apex
outside the interval) is dropped and reported among the quirks, one entry per row naming its
sheet, row and values (:func:`malformed_row`); with ``strict=True`` the reader refuses it
instead. Real workbooks carry such rows (CAS(ME)^3 part A's sheet 'label' has spNO.216 video d
with onset 3647, apex 2668, offset 2694).
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..utils import UserError

if TYPE_CHECKING:  # pandas is imported where tables are built, so evaluation stays light
    import pandas as pd

# ------------------------------------------------------------------ vocabularies
EXPRESSION_TYPES: Tuple[str, str] = ("micro", "macro")
EMOTIONS4: Tuple[str, ...] = ("negative", "positive", "surprise", "others")

# Emotion words of the datasets -> the 4 MEGC classes. CAS(ME)^3's 7 labels: negative =
# anger, disgust, fear, sad; positive = happy; surprise; others.
EMOTION4_MAP = {
    "anger": "negative", "angry": "negative", "disgust": "negative", "fear": "negative",
    "sad": "negative", "sadness": "negative", "contempt": "negative", "negative": "negative",
    "happy": "positive", "happiness": "positive", "positive": "positive",
    "surprise": "surprise",
    "others": "others", "other": "others", "repression": "others", "tense": "others",
}


GROUND_TRUTH_COLUMNS = ("subject", "video", "onset", "apex", "offset", "type", "emotion", "emotion_raw", "aus")
"""The ground-truth CSV that ``visionattn annotations`` and ``visionattn synth`` write and
``visionattn evaluate`` reads: one row per expression, the workbook's frame numbers."""


def ground_truth_csv(table: "pd.DataFrame") -> str:
    """The ground-truth CSV text (:data:`GROUND_TRUTH_COLUMNS`) of an expression table, rows in workbook order."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(GROUND_TRUTH_COLUMNS)
    for row in table[list(GROUND_TRUTH_COLUMNS)].itertuples(index=False):
        writer.writerow(row)
    return buf.getvalue()


def to_emotion4(label: str) -> str:
    """Map a dataset's emotion word to negative / positive / surprise / others ('' if unknown)."""
    return EMOTION4_MAP.get(str(label).strip().lower(), "")


def expression_type(text: str) -> Optional[str]:
    """``micro`` / ``macro`` for the workbooks' spellings (``micro-expression``,
    ``Macro-expression``, SAMM-LV's ``Macro`` and ``Micro - 1/2``), else None."""
    low = str(text).strip().lower()
    for kind in EXPRESSION_TYPES:
        if low.startswith(kind):
            return kind
    return None


# ------------------------------------------------------------------ the table
COLUMNS = {
    "dataset": "object", "subject": "object", "video": "object",
    "onset": "int64", "apex": "int64", "offset": "int64",
    "type": "object", "emotion": "object", "emotion_raw": "object", "self_report": "object",
    "aus": "object", "n_frames": "int64", "fps": "float64", "source": "object",
    "first_frame": "int64", "row": "object",
}
FRAME_COLUMNS = ("n_frames", "source", "first_frame")
ANNOTATION_COLUMNS = {k: v for k, v in COLUMNS.items() if k not in FRAME_COLUMNS}

# How to fill a missing offset (written as 0): "apex" (offset := apex, the default), an int
# n (offset := apex + n), "drop" (skip the row) or "error".
MissingOffset = Union[str, int]


def make_table(rows: Sequence[dict], columns: Optional[Dict[str, str]] = None,
               quirks: Optional[Dict[str, int]] = None) -> "pd.DataFrame":
    """A typed table from row dicts with the keys of ``columns`` (default :data:`COLUMNS`);
    ``quirks`` goes to ``table.attrs["quirks"]``."""
    import pandas as pd

    columns = COLUMNS if columns is None else columns
    df = pd.DataFrame(list(rows), columns=list(columns)).astype(columns)
    df.attrs["quirks"] = dict(quirks or {})
    return df


def parse_missing_offset(text: str) -> MissingOffset:
    """A ``--missing-offset`` value: apex, drop, error or a whole number of frames."""
    if text in ("apex", "drop", "error"):
        return text
    try:
        return int(text)
    except ValueError:
        raise UserError(f"--missing-offset {text!r}: expected apex, drop, error or a number of frames") from None


def fill_offset(onset: int, apex: int, offset: int, policy: MissingOffset, where: str) -> Optional[int]:
    """Resolve a missing (0) offset by ``policy``; None means drop the row."""
    if offset > 0:
        return offset
    if policy == "apex":
        return apex
    if policy == "drop":
        return None
    if policy == "error":
        raise UserError(f"{where}: offset is missing (0); pass missing_offset='apex', an int, or 'drop'")
    if isinstance(policy, int) and not isinstance(policy, bool):
        return apex + policy
    raise ValueError(f"missing_offset must be 'apex', 'drop', 'error' or an int, got {policy!r}")


def missing_offset_quirk(policy: MissingOffset) -> str:
    """How a missing offset was resolved, for the quirk report."""
    if policy == "drop":
        return "offset 0 (missing): row dropped"
    if policy == "apex":
        return "offset 0 (missing): set to the apex"
    return f"offset 0 (missing): set to apex + {policy}"


# ------------------------------------------------------------------ workbooks
@dataclass
class Sheet:
    """One worksheet: ``rows`` are ``(row number as Excel shows it, cell values)``, every row
    from row 1 on, blank ones included (cells: None, str, int, float, bool or datetime)."""

    workbook: Path
    name: str
    rows: List[Tuple[int, list]]

    def where(self, row: Optional[int] = None) -> str:
        place = f"{self.workbook}, sheet '{self.name}'"
        return place if row is None else f"{place}, row {row}"


def read_workbook(path: os.PathLike) -> Dict[str, Sheet]:
    """All sheets of an ``.xlsx`` (openpyxl) or ``.xls`` (xlrd) workbook, in file order."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: annotation workbook not found")
    try:
        if path.suffix.lower() == ".xls":
            import xlrd

            book = xlrd.open_workbook(str(path))
            out = {}
            for sh in book.sheets():
                rows = []
                for r in range(sh.nrows):
                    cells = []
                    for c in sh.row(r):
                        empty = c.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK)
                        cells.append(None if empty else c.value)
                    rows.append((r + 1, cells))
                out[sh.name] = Sheet(path, sh.name, rows)
            return out
        import openpyxl

        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        try:
            # min_row=1: openpyxl would otherwise start at the first non-blank row, and the
            # row numbers in messages must be the ones Excel shows.
            return {ws.title: Sheet(path, ws.title, [(i, list(r)) for i, r in
                                                    enumerate(ws.iter_rows(min_row=1, values_only=True), start=1)])
                    for ws in book.worksheets}
        finally:
            book.close()
    except UserError:
        raise
    except Exception as exc:  # corrupt file, wrong format
        raise UserError(f"{path}: cannot read workbook ({type(exc).__name__}: {exc})") from None


def cell_str(value) -> str:
    """A cell as stripped text; whole floats lose their ``.0`` (``4.0`` -> ``"4"``)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float) and value == int(value):
        value = int(value)
    return str(value).strip()


def cell_number(value, where: str, what: str) -> float:
    """A numeric cell (or numeric text) as a float; anything else is a UserError naming it."""
    try:
        if isinstance(value, bool):
            raise ValueError
        f = float(value.strip() if isinstance(value, str) else value)
        if f != f or f in (float("inf"), float("-inf")):
            raise ValueError
        return f
    except (TypeError, ValueError):
        raise UserError(f"{where}: {what} {value!r} is not a number") from None


def cell_int(value, where: str, what: str) -> int:
    """A cell holding a whole number."""
    try:
        f = cell_number(value, where, what)
    except UserError:
        f = None
    if f is None or f != int(f):
        raise UserError(f"{where}: {what} {value!r} is not a whole number")
    return int(f)


def blank(cells: Iterable) -> bool:
    return all(cell_str(c) == "" for c in cells)


def header_columns(sheet: Sheet, wanted: Dict[str, Tuple[str, ...]], required: Sequence[str],
                   search_rows: int = 20) -> Tuple[int, Dict[str, int]]:
    """Find the header row among the first ``search_rows`` rows: the first row holding every
    ``required`` column. ``wanted`` maps a key to its accepted names (compared lower-cased,
    spaces collapsed). Returns (header row number, key -> column position)."""
    def norm(v) -> str:
        return " ".join(cell_str(v).lower().split())

    for number, cells in sheet.rows[:search_rows]:
        names = [norm(c) for c in cells]
        found = {}
        for key, aliases in wanted.items():
            for alias in aliases:
                if alias in names:
                    found[key] = names.index(alias)
                    break
        if all(k in found for k in required):
            return number, found
    need = ", ".join(wanted[k][0] for k in required)
    raise UserError(f"{sheet.where()}: no header row with the columns {need} in the first {search_rows} rows")


class Quirks(Counter):
    """``{what was done: rows}``, in the order first seen: the report of the quirks a reader resolved."""

    def note(self, what: str, n: int = 1) -> None:
        self[what] += n


# ------------------------------------------------------------------ malformed rows
FRAME_FIELDS = ("onset", "apex", "offset")


def frame_cells(values: Sequence, whole: bool = True) -> Tuple[Optional[Tuple[float, ...]], str]:
    """A row's onset, apex and offset cells as numbers: ``(numbers, "")``, or ``(None, what is
    wrong)`` when one is empty or not a (``whole``) number. Ints when ``whole``, else floats."""
    numbers = []
    for name, value in zip(FRAME_FIELDS, values):
        if cell_str(value) == "":
            return None, f"{name} is missing"
        try:
            numbers.append(cell_int(value, "", name) if whole else cell_number(value, "", name))
        except UserError:
            return None, f"{name} {value!r} is not a {'whole ' if whole else ''}number"
    return tuple(numbers), ""


def interval_problem(onset: float, apex: float, offset: float) -> str:
    """What makes onset, apex, offset no expression ('' if nothing): onset after offset (or
    apex), apex outside [onset, offset]."""
    if onset > offset:
        return f"onset {onset} is after {f'apex {apex} and ' if onset > apex else ''}offset {offset}"
    if not onset <= apex <= offset:
        return f"apex {apex} is outside onset {onset} .. offset {offset}"
    return ""


def malformed_row(sheet: Sheet, number: int, problem: str, values: str, quirks: Quirks, strict: bool) -> None:
    """Drop a malformed row, noting it in ``quirks`` with its sheet, row and ``values`` (the
    row's cells as text), or raise UserError when ``strict``."""
    if strict:
        raise UserError(f"{sheet.where(number)}: {problem} ({values}); strict: malformed rows are refused")
    quirks.note(f"malformed row dropped: sheet '{sheet.name}', row {number} ({values}): {problem}")


def row_values(**cells) -> str:
    """``subject spNO.216, video d, onset 3647, ...``: a row's cells as the report shows them."""
    return ", ".join(f"{k} {cell_str(v) or '(empty)'}" for k, v in cells.items())


# ------------------------------------------------------------------ frame sources
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
VIDEO_FIRST_FRAME = 1  # annotation number of a video file's first frame


def video_length(source: Path) -> Tuple[int, int, float]:
    """(frame count, first frame number, fps or 0 if unknown) of a frame folder or video file.

    A video file stands for a frame folder whose images are numbered from 1 (``img1.jpg`` is the
    video's first frame), which is how the workbooks count; a folder's numbers are its own.
    """
    from .frames import probe

    info = probe(source)
    if info.kind == "images":
        return info.frame_count, info.frame_numbers[0], 0.0
    return info.frame_count, VIDEO_FIRST_FRAME, info.fps


def child_ci(folder: Path, name: str) -> Optional[Path]:
    """``folder/name`` matched case-insensitively (CAS(ME)^3 mixes spNO and spNo)."""
    exact = folder / name
    if exact.exists():
        return exact
    if folder.is_dir():
        low = name.lower()
        for entry in sorted(folder.iterdir()):
            if entry.name.lower() == low:
                return entry
    return None


# ------------------------------------------------------------------ synthesis and folds
def expression_profile(n: int, onset: int, apex: int, offset: int) -> np.ndarray:
    """Intensity over ``n`` frames (0-based indices): a raised-cosine rise from ``onset`` to 1 at
    ``apex`` and fall to ``offset`` (inclusive), 0 outside. Expressions are annotated by these
    three frames only; this is the smooth shape between them."""
    a = np.zeros(n, np.float32)
    t = np.arange(n)
    rise = (t >= onset) & (t <= apex)
    a[rise] = 0.5 - 0.5 * np.cos(np.pi * (t[rise] - onset + 1) / (apex - onset + 1))
    fall = (t > apex) & (t <= offset)
    a[fall] = 0.5 + 0.5 * np.cos(np.pi * (t[fall] - apex) / (offset - apex + 1))
    return a


@dataclass(frozen=True)
class Fold:
    """One leave-one-subject-out split. Model selection (epoch, threshold) uses ``val``
    only, which is drawn from the training subjects: the test subject is never looked at."""

    test: str
    train: Tuple[str, ...]
    val: Tuple[str, ...]


def loso_folds(
    table: "pd.DataFrame", val_subjects: int = 2, seed: int = 0, subjects: Optional[List[str]] = None
) -> List[Fold]:
    """Leave-one-subject-out folds over the subjects of ``table`` (or ``subjects``).

    For each held-out subject, ``val_subjects`` of the remaining subjects are set aside for
    validation (a fixed pseudo-random choice per fold, reproducible from ``seed``).
    """
    subs = sorted(subjects if subjects is not None else table["subject"].unique().tolist())
    if len(subs) < 2:
        raise ValueError("leave-one-subject-out needs at least 2 subjects")
    folds = []
    for i, test in enumerate(subs):
        rest = [s for s in subs if s != test]
        val = validation_subjects(rest, val_subjects, [seed, i])
        folds.append(Fold(test=test, train=tuple(s for s in rest if s not in val), val=tuple(val)))
    return folds


def validation_subjects(candidates: Sequence[str], count: int, seed) -> List[str]:
    """``count`` of the ``candidates`` (the subjects not held out for testing) set aside for model
    selection, leaving at least one to train on: a fixed pseudo-random choice from ``seed`` (an
    int or a list of ints, as numpy's ``default_rng`` takes), sorted."""
    n = min(count, max(0, len(candidates) - 1))
    if n == 0:
        return []
    return sorted(np.random.default_rng(seed).choice(sorted(candidates), size=n, replace=False).tolist())
