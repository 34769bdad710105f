"""CAS(ME)^2 and CAS(ME)^3 (part A) annotation workbooks, read as distributed, and their frames.

The readers take the workbooks alone and return the table of
:mod:`visionattn.data.annotations` without frame columns; :func:`casme2_source` and
:func:`casme3_source` find a video's frames (see :func:`visionattn.data.datasets.attach_sources`).
A row that does not fit the layout (unknown subject index or video, unknown expression type)
raises :class:`visionattn.utils.UserError` naming the workbook, sheet and row as Excel numbers
it; a malformed row (frame number missing, onset after apex or offset, apex outside the
interval) is dropped and reported among the quirks, or refused with ``strict=True``
(:func:`visionattn.data.annotations.malformed_row`).

CAS(ME)^2 (``CAS(ME)^2code_final.xlsx``; the MEGC 2021 copy ``CASME_sq_gt.xlsx`` is the same),
three sheets in this order, none with a header row::

    1 CASFEcode_final  one row per expression: subject INDEX (1-22), expression id
                       (``anger1_1`` = video name + occurrence), onset, apex, offset (0 =
                       missing), AUs, expert emotion, type (``macro-expression``), self-report
    2 naming rule1     one row per expression row of sheet 1: subject NUMBER (15), folder
                       (``s15``), subject INDEX (1); the index -> folder map is column 3 -> 2
    3 naming rule2     video code (101, zero-padded to ``0101``) -> video name (``disgust1``)
    frames             <frames_root>/s15/15_0101<anything>/img1.jpg ... (or a video file
                       <frames_root>/s15/15_0101<anything>.mp4)

CAS(ME)^3 part A: the micro-expression labels ``cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx``
(sheet ``label``, header Subject, Filename, Onset, Apex, Offset, AU, Objective class,
emotion) are enough for the micro rows; the all-expression workbook
``CAS(ME)3_part_A_v2.xls`` (header ... Expression type, Objective class) adds the macro rows,
and ``cas(me)3_part_A_MaE_label_JpgIndex_v2_emotion.xlsx`` their emotions where distributed.
Frames: ``<frames_root>/spNO.1/a/color/<n>.jpg`` (or without ``color``), numbered from
anywhere with gaps; subject and video folders match case-insensitively.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

from ..utils import UserError
from .annotations import (ANNOTATION_COLUMNS, VIDEO_EXTS, MissingOffset, Quirks, Sheet, blank, cell_int, cell_str,
                          child_ci, expression_type, fill_offset, frame_cells, header_columns, interval_problem,
                          make_table, malformed_row, missing_offset_quirk, read_workbook, row_values, to_emotion4)

CASME2_WORKBOOKS = ("CAS(ME)^2code_final.xlsx", "CASME_sq_gt.xlsx")
CASME2_WORKBOOK = CASME2_WORKBOOKS[0]
CASME2_SHEETS = ("CASFEcode_final", "naming rule1", "naming rule2")
CASME2_FPS = 30.0
CASME3_FPS = 30.0
CASME3_EMOTIONS = ("anger", "disgust", "fear", "sad", "happy", "surprise", "others")


# --------------------------------------------------------------------------- CAS(ME)^2
def _casme2_subjects(sheet: Sheet) -> Dict[int, str]:
    """subject index (column 3) -> folder (column 2), from one row per expression."""
    out: Dict[int, Tuple[str, int]] = {}
    for number, cells in sheet.rows:
        if blank(cells):
            continue
        where = sheet.where(number)
        if len(cells) < 3 or blank(cells[2:3]):
            raise UserError(f"{where}: expected 3 columns (subject number, folder, subject index), "
                            f"found {sum(cell_str(c) != '' for c in cells)} filled; a dataset written by an older "
                            f"`visionattn synth` has 2: run synth again on the same --out to rewrite its workbook")
        index = cell_int(cells[2], where, "subject index (column 3)")
        folder = cell_str(cells[1])
        if not folder:
            raise UserError(f"{where}: subject index {index} has no folder name (column 2)")
        if not folder.lower().startswith("s"):
            folder = f"s{cell_int(cells[1], where, 'folder (column 2)'):02d}"
        if index in out and out[index][0] != folder:
            raise UserError(f"{where}: subject index {index} is folder {folder!r} here but "
                            f"{out[index][0]!r} in row {out[index][1]}")
        out.setdefault(index, (folder, number))
    if not out:
        raise UserError(f"{sheet.where()}: no 'subject number, folder, subject index' rows")
    return {k: v[0] for k, v in out.items()}


def _casme2_videos(sheet: Sheet, quirks: Quirks) -> Dict[str, str]:
    """video name (``anger1``, lower case) -> 4-digit code (``0401``)."""
    out: Dict[str, Tuple[str, int]] = {}
    for number, cells in sheet.rows:
        if blank(cells):
            continue
        code, name = cell_str(cells[0]), cell_str(cells[1] if len(cells) > 1 else None).lower()
        if not code.isdigit() or not name:
            quirks.note(f"sheet '{sheet.name}': rows without a numeric video code and a name, skipped")
            continue
        code = code.zfill(4)
        if name in out and out[name][0] != code:
            raise UserError(f"{sheet.where(number)}: video {name!r} is code {code} here but "
                            f"{out[name][0]} in row {out[name][1]}")
        out.setdefault(name, (code, number))
    if not out:
        raise UserError(f"{sheet.where()}: no 'video code, video name' rows")
    return {k: v[0] for k, v in out.items()}


def load_casme2_annotations(workbook: os.PathLike, missing_offset: MissingOffset = "apex",
                            dataset: str = "casme2", strict: bool = False):
    """The expressions of a CAS(ME)^2 workbook (either distributed name), without frames.

    Frame numbers are the workbook's (1-based). ``missing_offset``: policy for offset 0, see
    :func:`visionattn.data.annotations.fill_offset`. ``strict``: refuse a malformed row instead
    of dropping and reporting it. Returns a table with
    :data:`~visionattn.data.annotations.ANNOTATION_COLUMNS`, quirks in ``attrs["quirks"]``.
    """
    wb = Path(workbook)
    sheets = list(read_workbook(wb).values())
    if len(sheets) < 3:
        raise UserError(f"{wb}: expected 3 sheets ({', '.join(CASME2_SHEETS)}), found "
                        f"{[s.name for s in sheets]}")
    quirks = Quirks()
    expressions, subject_sheet, video_sheet = sheets[:3]
    subjects = _casme2_subjects(subject_sheet)
    videos = _casme2_videos(video_sheet, quirks)
    rows = []
    for number, cells in expressions.rows:
        if blank(cells):
            continue
        cells = list(cells) + [None] * (9 - len(cells))
        where = expressions.where(number)
        subj_idx = cell_int(cells[0], where, "subject index")
        if subj_idx not in subjects:
            raise UserError(f"{where}: subject index {subj_idx} is not in column 3 of sheet '{subject_sheet.name}'")
        expr_id = cell_str(cells[1])
        video_name = expr_id.rsplit("_", 1)[0].lower()
        if video_name not in videos:
            raise UserError(f"{where}: expression id {expr_id!r} names video {video_name!r}, "
                            f"which sheet '{video_sheet.name}' does not list")
        values = row_values(subject=cells[0], expression=expr_id, onset=cells[2], apex=cells[3], offset=cells[4])
        frames = _checked_frames(cells[2:5], expressions, number, values, where, missing_offset, quirks, strict,
                                 from_one=True)
        if frames is None:
            continue
        onset, apex, offset = frames
        kind = expression_type(cell_str(cells[7]))
        if kind is None:
            raise UserError(f"{where}: expression type {cells[7]!r} is neither macro- nor micro-expression")
        emotion_raw = cell_str(cells[6]).lower()
        emotion = to_emotion4(emotion_raw)
        if not emotion:
            quirks.note("emotion not one of negative/positive/surprise/others: left unlabelled")
        rows.append(dict(
            dataset=dataset, subject=subjects[subj_idx], video=videos[video_name], onset=onset, apex=apex,
            offset=offset, type=kind, emotion=emotion, emotion_raw=emotion_raw,
            self_report=cell_str(cells[8]).lower(), aus=cell_str(cells[5]), fps=CASME2_FPS, row=where,
        ))
    if not rows:
        raise UserError(f"{expressions.where()}: no expression rows")
    return make_table(rows, ANNOTATION_COLUMNS, quirks)


def casme2_source(frames_root: Path, subject: str, video: str) -> Path:
    """``frames_root/s15/15_0101<anything>`` (a frame folder or a video file)."""
    subject_dir = child_ci(frames_root, subject)
    if subject_dir is None or not subject_dir.is_dir():
        raise UserError(f"{frames_root / subject}: subject folder not found")
    prefix = f"{int(subject.lstrip('sS'))}_{video}"
    matches = sorted(p for p in subject_dir.iterdir()
                     if p.name.startswith(prefix) and (p.is_dir() or p.suffix.lower() in VIDEO_EXTS))
    if not matches:
        raise UserError(f"{subject_dir / prefix}*: no frame folder or video file of that name")
    return matches[0]


# --------------------------------------------------------------------------- CAS(ME)^3
_CASME3_COLUMNS = {
    "subject": ("subject",), "filename": ("filename",), "onset": ("onset",), "apex": ("apex",),
    "offset": ("offset",), "au": ("au", "aus", "action units"), "type": ("expression type",),
    "objective": ("objective class",), "emotion": ("emotion",),
}
_SP_NUMBER = re.compile(r"sp\s*no\.?\s*0*(\d+)", re.IGNORECASE)


def casme3_subject(value, quirks: Optional[Quirks] = None) -> str:
    """``spNO.<n>`` for the workbooks' spellings (``spNO.1``, ``spNo.1``, ``spno1``)."""
    raw = cell_str(value)
    m = _SP_NUMBER.fullmatch(raw.replace(" ", ""))
    if not m:
        return raw
    name = f"spNO.{int(m.group(1))}"
    if quirks is not None and name != raw:
        quirks.note("subject spelled otherwise than spNO.<n> (e.g. spNo.1): written spNO.<n>")
    return name


def _casme3_video(value, quirks: Quirks) -> str:
    raw = cell_str(value)
    if raw != raw.lower():
        quirks.note("filename in upper case (J beside j): lower-cased")
    return raw.lower()


def _casme3_intervals(sheet: Sheet, header: int, cols, quirks: Quirks, missing_offset: MissingOffset,
                      strict: bool):
    """The interval rows below ``header`` of a CAS(ME)^3 workbook sheet, read the same way in the
    label and the all-expression workbooks: (where, padded cells, subject, video, onset, apex,
    offset); rows the missing-offset policy drops are skipped, malformed rows dropped and
    reported (refused if ``strict``)."""
    for number, cells in sheet.rows:
        if number <= header or blank(cells):
            continue
        where = sheet.where(number)
        cells = list(cells) + [None] * (max(cols.values()) + 1 - len(cells))
        subject = casme3_subject(cells[cols["subject"]], quirks)
        video = _casme3_video(cells[cols["filename"]], quirks)
        if not subject or not video:
            raise UserError(f"{where}: subject or filename is empty")
        raw = [cells[cols[k]] for k in ("onset", "apex", "offset")]
        values = row_values(subject=subject, video=video, onset=raw[0], apex=raw[1], offset=raw[2])
        frames = _checked_frames(raw, sheet, number, values, where, missing_offset, quirks, strict)
        if frames is None:
            continue
        onset, apex, offset = frames
        yield where, cells, subject, video, onset, apex, offset


def _casme3_label_rows(sheet: Sheet, quirks: Quirks, missing_offset: MissingOffset, kind: str, strict: bool):
    """Rows of a label workbook (sheet ``label``): (where, subject, video, onset, apex, offset,
    AUs, raw emotion); ``kind`` names what the rows are for the messages."""
    header, cols = header_columns(sheet, _CASME3_COLUMNS, ("subject", "filename", "onset", "apex", "offset", "emotion"))
    for where, cells, subject, video, onset, apex, offset in _casme3_intervals(sheet, header, cols, quirks,
                                                                              missing_offset, strict):
        raw = cell_str(cells[cols["emotion"]])
        if raw != raw.lower():
            quirks.note(f"{kind} emotion capitalised (Others beside others): lower-cased")
        emotion_raw = raw.lower()
        if emotion_raw not in CASME3_EMOTIONS:
            quirks.note(f"{kind} emotion not one of the 7 CAS(ME)^3 labels: left unlabelled")
        au = cell_str(cells[cols["au"]]) if "au" in cols else ""
        yield where, subject, video, onset, apex, offset, au, emotion_raw


def _label_sheet(path: Path) -> Sheet:
    sheets = read_workbook(path)
    if "label" in sheets:
        return sheets["label"]
    raise UserError(f"{path}: sheet 'label' not found (sheets: {list(sheets)})")


def _row(subject, video, onset, apex, offset, kind, emotion_raw, au, where) -> dict:
    return dict(dataset="casme3a", subject=subject, video=video, onset=onset, apex=apex, offset=offset, type=kind,
                emotion=to_emotion4(emotion_raw) if emotion_raw in CASME3_EMOTIONS else "",
                emotion_raw=emotion_raw, self_report="", aus=au, fps=CASME3_FPS, row=where)


def load_casme3_annotations(micro_labels: Optional[os.PathLike] = None, workbook: Optional[os.PathLike] = None,
                            macro_labels: Optional[os.PathLike] = None, missing_offset: MissingOffset = "apex",
                            strict: bool = False):
    """The expressions of CAS(ME)^3 part A, without frames.

    Args:
        micro_labels: the micro-expression label workbook (sheet ``label``); alone, it gives
            the micro rows with their emotions.
        workbook: the all-expression workbook (macro and micro rows, no emotions); when
            given, its rows are the table and the label workbooks lend their emotions to the
            rows with the same subject, video and onset (or apex).
        macro_labels: the macro-expression emotion workbook, where distributed.
        missing_offset: policy for offset 0.
        strict: refuse a malformed row of the table's workbook instead of dropping and reporting it.
    Subjects are written ``spNO.<n>``, videos lower case; 7 emotions map to the 4 classes.
    """
    if micro_labels is None and workbook is None:
        raise UserError("CAS(ME)^3: give the micro-expression label workbook (cas(me)3_part_A_ME_label*.xlsx), "
                        "the all-expression workbook (CAS(ME)3_part_A*.xls), or both")
    quirks = Quirks()
    labels: Dict[str, Dict[Tuple[str, str, int], str]] = {"micro": {}, "macro": {}}
    micro_rows = []
    for kind, path in (("micro", micro_labels), ("macro", macro_labels)):
        if path is None:
            continue
        # Rows that only lend their emotion are not reported, and need no missing-offset policy.
        table_rows = kind == "micro" and workbook is None
        for where, subject, video, onset, apex, offset, au, emotion_raw in _casme3_label_rows(
                _label_sheet(Path(path)), quirks if table_rows else Quirks(),
                missing_offset if table_rows else "apex", kind, strict and table_rows):
            for frame in (onset, apex):
                labels[kind].setdefault((subject, video, frame), emotion_raw)
            if table_rows:
                micro_rows.append(_row(subject, video, onset, apex, offset, "micro", emotion_raw, au, where))
    if workbook is None:
        if not micro_rows:
            raise UserError(f"{micro_labels}: no expression rows in sheet 'label'")
        return make_table(micro_rows, ANNOTATION_COLUMNS, quirks)

    wb = Path(workbook)
    sheet = next(iter(read_workbook(wb).values()))
    header, cols = header_columns(sheet, _CASME3_COLUMNS, ("subject", "filename", "onset", "apex", "offset", "type"))
    rows = []
    for where, cells, subject, video, onset, apex, offset in _casme3_intervals(sheet, header, cols, quirks,
                                                                              missing_offset, strict):
        kind = expression_type(cell_str(cells[cols["type"]]))
        if kind is None:
            raise UserError(f"{where}: expression type {cells[cols['type']]!r} is neither macro- nor micro-expression")
        emotion_raw = ""
        source = micro_labels if kind == "micro" else macro_labels
        if source is not None:
            table = labels[kind]
            emotion_raw = table.get((subject, video, onset), table.get((subject, video, apex), ""))
            if not emotion_raw:
                quirks.note(f"{kind} row without a matching row in the {kind} label workbook: no emotion")
        rows.append(_row(subject, video, onset, apex, offset, kind, emotion_raw,
                         cell_str(cells[cols["au"]]) if "au" in cols else "", where))
    if not rows:
        raise UserError(f"{sheet.where()}: no expression rows")
    return make_table(rows, ANNOTATION_COLUMNS, quirks)


def casme3_source(frames_root: Path, subject: str, video: str) -> Path:
    """``frames_root/spNO.1/a/color`` (or ``.../a``), folders matched case-insensitively."""
    subject_dir = child_ci(frames_root, subject)
    if subject_dir is None:
        raise UserError(f"{frames_root / subject}: subject folder not found (spNO/spNo in any case)")
    video_dir = child_ci(subject_dir, video)
    if video_dir is None:
        raise UserError(f"{subject_dir / video}: video folder not found")
    color = child_ci(video_dir, "color")
    return color if color is not None and color.is_dir() else video_dir


def _checked_frames(raw: Sequence, sheet: Sheet, number: int, values: str, where: str, missing_offset: MissingOffset,
                    quirks: Quirks, strict: bool, from_one: bool = False) -> Optional[Tuple[int, int, int]]:
    """A row's ``(onset, apex, offset)`` from its three frame cells ``raw``, the missing offset
    filled by ``missing_offset``; None when the row is left out: a malformed one is reported
    (:func:`~.annotations.malformed_row`, naming ``sheet``, row ``number`` and ``values``), one
    whose offset the policy drops is noted among the quirks. ``from_one``: an onset below 1 is
    malformed too (frame numbers that count from 1)."""
    frames, problem = frame_cells(raw)
    if frames is None:
        malformed_row(sheet, number, problem, values, quirks, strict)
        return None
    onset, apex, raw_offset = frames
    offset = fill_offset(onset, apex, raw_offset, missing_offset, where)
    if raw_offset <= 0:
        quirks.note(missing_offset_quirk(missing_offset))
    if offset is None:
        return None
    problem = interval_problem(onset, apex, offset) or (
        f"onset {onset} is not a frame number (they count from 1)" if from_one and onset < 1 else "")
    if problem:
        malformed_row(sheet, number, problem, values, quirks, strict)
        return None
    return onset, apex, offset
