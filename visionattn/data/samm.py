"""SAMM Long Videos (SAMM-LV) annotation workbook, read as distributed, and its frames.

Workbook ``SAMM_LongVideos_V1/V2/V3_Release.xlsx`` (the MEGC copy ``SAMMLV_gt.xlsx`` is the
same), sheet ``FACS_Movement_Only``: a title and notes, then the header row (row 10 in the
releases) Subject, Filename, Inducement Code, Onset, Apex, Offset, Duration, Type, Action
Units, Notes; one row per expression below it. 200 fps. Frames:
``<frames_root>/006_1/006_1_0001.jpg`` (4-digit numbers from 1), ``frames_root`` being the
``SAMM_longvideos`` folder.

Identifiers: Filename ``006_1_3`` is subject ``006`` (zero-padded as the folders are, while
the Subject cell reads 6), video ``1`` (folder ``006_1``, which is also MEGC's ``vid``),
occurrence 3. The workbook gives no emotion, so ``emotion`` is empty.

Quirks and what the reader does (each counted in ``table.attrs["quirks"]``):

- frame numbers with decimals (566.4): rounded outward, onset down and offset up, so the
  interval never shrinks; a decimal apex goes to the nearest frame (halves up);
- apex -1 (not annotated): the middle of the interval, ``(onset + offset) // 2``;
- onset 0: ``onset_zero="drop"`` (default) skips the row, as the published baselines do
  (these are over-long macro rows that begin before the video); ``"keep"`` keeps it as written;
- offset 0: the ``missing_offset`` policy, as for CAS(ME)^2;
- a malformed row (a frame number missing or not a number, onset after apex or offset, apex
  outside the interval): dropped and reported with its row and values, or refused with
  ``strict=True``.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from ..utils import UserError
from .annotations import (ANNOTATION_COLUMNS, FRAME_FIELDS, VIDEO_EXTS, MissingOffset, Quirks, blank, cell_str,
                          child_ci, expression_type, fill_offset, frame_cells, header_columns, interval_problem,
                          make_table, malformed_row, missing_offset_quirk, read_workbook, row_values)

SAMM_FPS = 200.0
SAMM_SHEET = "FACS_Movement_Only"
SAMM_FOLDER = "SAMM_longvideos"
ONSET_ZERO = ("drop", "keep")
_COLUMNS = {
    "subject": ("subject",), "filename": ("filename",), "onset": ("onset",), "apex": ("apex",),
    "offset": ("offset",), "type": ("type",), "aus": ("action units", "aus", "au"),
}


def load_samm_annotations(workbook: os.PathLike, missing_offset: MissingOffset = "apex", onset_zero: str = "drop",
                          strict: bool = False):
    """The expressions of a SAMM-LV workbook, without frames (see the module notes for the
    quirks; ``strict`` refuses a malformed row instead of dropping and reporting it). Returns a
    table with :data:`~visionattn.data.annotations.ANNOTATION_COLUMNS`."""
    if onset_zero not in ONSET_ZERO:
        raise ValueError(f"onset_zero must be one of {ONSET_ZERO}, got {onset_zero!r}")
    wb = Path(workbook)
    sheets = read_workbook(wb)
    if SAMM_SHEET in sheets:
        sheet = sheets[SAMM_SHEET]
    elif len(sheets) == 1:
        sheet = next(iter(sheets.values()))
    else:
        raise UserError(f"{wb}: sheet '{SAMM_SHEET}' not found (sheets: {list(sheets)})")
    header, cols = header_columns(sheet, _COLUMNS, ("subject", "filename", "onset", "apex", "offset", "type"))
    quirks = Quirks()
    rows = []
    for number, cells in sheet.rows:
        if number <= header or blank(cells):
            continue
        cells = list(cells) + [None] * (max(cols.values()) + 1 - len(cells))
        where = sheet.where(number)
        filename = cell_str(cells[cols["filename"]])
        if not filename and blank([cells[cols["onset"]]]):
            quirks.note("rows with neither filename nor onset (notes): skipped")
            continue
        parts = filename.split("_")
        if len(parts) < 2 or not parts[0].isdigit() or not parts[1]:
            raise UserError(f"{where}: filename {filename!r} is not <subject>_<video>_<occurrence> (e.g. 006_1_3)")
        subject, video = parts[0], parts[1]
        subject_cell = cell_str(cells[cols["subject"]])
        if subject_cell and (not subject_cell.isdigit() or int(subject_cell) != int(subject)):
            quirks.note("Subject cell differs from the filename's subject: the filename's used")
        raw = [cells[cols[k]] for k in FRAME_FIELDS]
        values = row_values(filename=filename, onset=raw[0], apex=raw[1], offset=raw[2])
        frames, problem = frame_cells(raw, whole=False)
        if frames is None:
            malformed_row(sheet, number, problem, values, quirks, strict)
            continue
        onset, apex, offset = frames
        if onset == 0:
            if onset_zero == "drop":
                quirks.note("onset 0: row dropped (onset_zero='drop', as the published baselines)")
                continue
            quirks.note("onset 0: kept as written (onset_zero='keep')")
        if any(v != int(v) for v in (onset, apex, offset)):
            quirks.note("decimal frame numbers: onset rounded down, offset up, apex to nearest")
        onset_i, offset_i = math.floor(onset), math.ceil(offset)
        apex_i = None if apex == -1 else math.floor(apex + 0.5)
        if offset_i <= 0:
            quirks.note(missing_offset_quirk(missing_offset))
            offset_i = fill_offset(onset_i, onset_i if apex_i is None else apex_i, 0, missing_offset, where)
            if offset_i is None:
                continue
        problem = interval_problem(onset_i, onset_i if apex_i is None else apex_i, offset_i) or (
            f"onset {onset_i} is not a frame number" if onset_i < 0 else "")
        if problem:
            malformed_row(sheet, number, problem, values, quirks, strict)
            continue
        if apex_i is None:
            quirks.note("apex -1 (not annotated): set to the middle of the interval, (onset + offset) // 2")
            apex_i = (onset_i + offset_i) // 2
        kind = expression_type(cell_str(cells[cols["type"]]))
        if kind is None:
            raise UserError(f"{where}: type {cells[cols['type']]!r} is neither Macro nor Micro")
        rows.append(dict(
            dataset="samm", subject=subject, video=video, onset=onset_i, apex=apex_i, offset=offset_i, type=kind,
            emotion="", emotion_raw="", self_report="", aus=cell_str(cells[cols["aus"]]) if "aus" in cols else "",
            fps=SAMM_FPS, row=where,
        ))
    if not rows:
        raise UserError(f"{sheet.where()}: no expression rows below the header (row {header})")
    return make_table(rows, ANNOTATION_COLUMNS, quirks)


def samm_folder(subject: str, video: str) -> str:
    """The frame folder (and MEGC vid) of a video: ``006_1``."""
    return f"{subject}_{video}"


def samm_source(frames_root: Path, subject: str, video: str) -> Path:
    """``frames_root/006_1`` (a frame folder, or a video file ``006_1.mp4``)."""
    name = samm_folder(subject, video)
    folder = child_ci(frames_root, name)
    if folder is not None and folder.is_dir():
        return folder
    for ext in sorted(VIDEO_EXTS):
        f = child_ci(frames_root, name + ext)
        if f is not None:
            return f
    raise UserError(f"{frames_root / name}: frame folder not found")
