"""Loaders for the real CAS(ME)^2 and CAS(ME)^3 (part A) layouts.

Both return the typed expression table of :mod:`visionattn.data.annotations`. Errors in the
files (a malformed row, a missing sheet or frame folder) raise
:class:`visionattn.utils.UserError` naming the file, sheet and row.

CAS(ME)^2 (``CAS(ME)^2code_final.xlsx``)::

    sheet 1, no header: subject index, expression id (``anger1_1``), onset, apex, offset,
                        AUs, expert emotion, type (``macro-expression``), self-report
    sheet 2:            subject index -> folder (``1 -> s15``)
    sheet 3:            video code -> video name (``0401 -> anger1``)
    frames:             <frames_root>/s15/15_0401<anything>/img1.jpg ... (or a video file
                        <frames_root>/s15/15_0401<anything>.mp4)

CAS(ME)^3 part A (``CAS(ME)3_part_A_v2.xls`` and
``cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx``, sheet ``label``), frames under
``<frames_root>/<subject>/<a..m>/color/`` (or without ``color``), numbered from anywhere
with gaps; subject folders are matched case-insensitively (``spNO.1`` vs ``spNo.1``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pandas as pd

from ..utils import UserError
from .frames import probe
from .annotations import MissingOffset, fill_offset, make_table, to_emotion4

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
VIDEO_FIRST_FRAME = 1  # annotation number of a video file's first frame
CASME2_WORKBOOK = "CAS(ME)^2code_final.xlsx"
CASME2_FPS = 30.0
CASME3_FPS = 30.0


# --------------------------------------------------------------------------- helpers
def _read_sheets(path: Path, header: Optional[int]) -> Dict[str, pd.DataFrame]:
    if not path.is_file():
        raise UserError(f"{path}: annotation workbook not found")
    try:
        return pd.read_excel(path, sheet_name=None, header=header, dtype=object)
    except Exception as exc:  # corrupt file, wrong format, missing engine
        raise UserError(f"{path}: cannot read workbook ({type(exc).__name__}: {exc})") from None


def _cell_int(value, where: str, what: str) -> int:
    try:
        if isinstance(value, str):
            value = value.strip()
        f = float(value)
        if f != int(f) or f != f:
            raise ValueError
        return int(f)
    except (TypeError, ValueError):
        raise UserError(f"{where}: {what} {value!r} is not a whole number") from None


def _cell_str(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float) and value == int(value):
        value = int(value)
    return str(value).strip()


def _expression_type(value, where: str) -> str:
    text = _cell_str(value).lower()
    if text.startswith("micro"):
        return "micro"
    if text.startswith("macro"):
        return "macro"
    raise UserError(f"{where}: expression type {value!r} is neither macro- nor micro-expression")


def video_length(source: Path) -> Tuple[int, int, float]:
    """(frame count, first frame number, fps or 0 if unknown) of a frame folder or video file.

    A video file stands for a frame folder whose images are numbered from 1 (``img1.jpg`` is the
    video's first frame), which is how the workbooks count; a folder's numbers are its own.
    """
    info = probe(source)
    if info.kind == "images":
        return info.frame_count, info.frame_numbers[0], 0.0
    return info.frame_count, VIDEO_FIRST_FRAME, info.fps


def _child_ci(folder: Path, name: str) -> Optional[Path]:
    """``folder/name`` matched case-insensitively (CAS(ME)^3 mixes spNO and spNo)."""
    exact = folder / name
    if exact.exists():
        return exact
    if folder.is_dir():
        low = name.lower()
        for entry in folder.iterdir():
            if entry.name.lower() == low:
                return entry
    return None


# --------------------------------------------------------------------------- CAS(ME)^2
def _casme2_subject_map(sheet: pd.DataFrame, where: str) -> Dict[int, str]:
    out = {}
    for i, (idx, folder) in enumerate(zip(sheet.iloc[:, 0], sheet.iloc[:, 1]), start=1):
        try:
            key = int(float(idx))
        except (TypeError, ValueError):
            continue  # a header or note row
        name = _cell_str(folder)
        if not name:
            raise UserError(f"{where}, row {i}: subject {key} has no folder name")
        out[key] = name if name.lower().startswith("s") else f"s{int(float(name)):02d}"
    if not out:
        raise UserError(f"{where}: no 'index -> folder' rows found")
    return out


def _casme2_video_map(sheet: pd.DataFrame, where: str) -> Dict[str, str]:
    """video name (``anger1``) -> 4-digit code (``0401``)."""
    out = {}
    for code, name in zip(sheet.iloc[:, 0], sheet.iloc[:, 1]):
        code_s, name_s = _cell_str(code), _cell_str(name)
        if code_s.isdigit() and name_s:
            out[name_s.lower()] = code_s.zfill(4)
    if not out:
        raise UserError(f"{where}: no 'code -> video name' rows found")
    return out


def _find_casme2_source(frames_root: Path, subject: str, code: str, where: str) -> Path:
    subject_dir = _child_ci(frames_root, subject)
    if subject_dir is None:
        raise UserError(f"{where}: subject folder {frames_root / subject} not found")
    prefix = f"{int(subject.lstrip('sS'))}_{code}"
    matches = sorted(p for p in subject_dir.iterdir()
                     if p.name.startswith(prefix) and (p.is_dir() or p.suffix.lower() in VIDEO_EXTS))
    if not matches:
        raise UserError(f"{where}: no frame folder or video named {prefix}* in {subject_dir}")
    return matches[0]


def load_casme2(
    root: os.PathLike,
    workbook: Optional[os.PathLike] = None,
    frames_root: Optional[os.PathLike] = None,
    missing_offset: MissingOffset = "apex",
    dataset: str = "casme2",
) -> pd.DataFrame:
    """Read CAS(ME)^2: the header-less workbook, its subject and video-code sheets, and the
    frame folders (or video files) it refers to.

    Args:
        root: the dataset folder.
        workbook: defaults to ``root/CAS(ME)^2code_final.xlsx``.
        frames_root: folder holding ``s15/``...; defaults to ``root/rawpic``, else ``root``.
        missing_offset: policy for offset 0, see :data:`visionattn.data.annotations.MissingOffset`.
    """
    root = Path(root)
    wb = Path(workbook) if workbook else root / CASME2_WORKBOOK
    if frames_root is None:
        frames_root = root / "rawpic" if (root / "rawpic").is_dir() else root
    frames_root = Path(frames_root)
    sheets = _read_sheets(wb, header=None)
    names = list(sheets)
    if len(names) < 3:
        raise UserError(f"{wb}: expected 3 sheets (expressions, subjects, video codes), found {names}")
    subjects = _casme2_subject_map(sheets[names[1]], f"{wb}, sheet '{names[1]}'")
    videos = _casme2_video_map(sheets[names[2]], f"{wb}, sheet '{names[2]}'")

    rows, lengths = [], {}
    sheet = sheets[names[0]]
    for i, values in enumerate(sheet.itertuples(index=False), start=1):
        values = list(values) + [None] * (9 - len(values))
        if all(_cell_str(v) == "" for v in values):
            continue
        where = f"{wb}, sheet '{names[0]}', row {i}"
        subj_idx = _cell_int(values[0], where, "subject index")
        if subj_idx not in subjects:
            raise UserError(f"{where}: subject index {subj_idx} is not in sheet '{names[1]}'")
        expr_id = _cell_str(values[1])
        video_name = expr_id.rsplit("_", 1)[0].lower()
        if video_name not in videos:
            raise UserError(f"{where}: expression id {expr_id!r} names video {video_name!r}, "
                            f"which sheet '{names[2]}' does not list")
        onset = _cell_int(values[2], where, "onset")
        apex = _cell_int(values[3], where, "apex")
        offset = fill_offset(onset, apex, _cell_int(values[4], where, "offset"), missing_offset, where)
        if offset is None:
            continue
        if not 0 < onset <= offset:
            raise UserError(f"{where}: onset {onset} / offset {offset} do not make an interval")
        subject, code = subjects[subj_idx], videos[video_name]
        key = (subject, code)
        if key not in lengths:
            source = _find_casme2_source(frames_root, subject, code, where)
            lengths[key] = (source, *video_length(source))
        source, n_frames, first, video_fps = lengths[key]
        emotion_raw = _cell_str(values[6]).lower()
        rows.append(dict(
            dataset=dataset, subject=subject, video=code, onset=onset, apex=apex, offset=offset,
            type=_expression_type(values[7], where), emotion=to_emotion4(emotion_raw),
            emotion_raw=emotion_raw, self_report=_cell_str(values[8]).lower(), aus=_cell_str(values[5]),
            n_frames=n_frames, fps=video_fps or CASME2_FPS, source=str(source), first_frame=first, row=where,
        ))
    if not rows:
        raise UserError(f"{wb}, sheet '{names[0]}': no expression rows")
    return make_table(rows)


# --------------------------------------------------------------------------- CAS(ME)^3
_CASME3_COLUMNS = {
    "subject": ("subject",), "filename": ("filename",), "onset": ("onset",), "apex": ("apex",),
    "offset": ("offset",), "au": ("au", "aus"), "type": ("expression type", "type"),
    "emotion": ("emotion",),
}


def _columns(df: pd.DataFrame, need: Tuple[str, ...], where: str) -> Dict[str, str]:
    lookup = {str(c).strip().lower(): c for c in df.columns}
    out = {}
    for key in need:
        for alias in _CASME3_COLUMNS[key]:
            if alias in lookup:
                out[key] = lookup[alias]
                break
        else:
            raise UserError(f"{where}: column {key!r} not found (columns: {list(df.columns)})")
    return out


def _norm_subject(value) -> str:
    return _cell_str(value).lower().replace(" ", "")


def _find_casme3_source(frames_root: Path, subject: str, filename: str, where: str) -> Path:
    subject_dir = _child_ci(frames_root, subject)
    if subject_dir is None:
        raise UserError(f"{where}: subject folder {frames_root / subject} not found")
    video_dir = _child_ci(subject_dir, filename)
    if video_dir is None:
        raise UserError(f"{where}: video folder {subject_dir / filename} not found")
    color = _child_ci(video_dir, "color")
    return color if color is not None and color.is_dir() else video_dir


def load_casme3(
    root: os.PathLike,
    workbook: Optional[os.PathLike] = None,
    micro_labels: Optional[os.PathLike] = None,
    frames_root: Optional[os.PathLike] = None,
    missing_offset: MissingOffset = "apex",
) -> pd.DataFrame:
    """Read CAS(ME)^3 part A: the all-expressions workbook, the micro-expression label
    workbook (emotions for micro rows; macro rows have no emotion), and the frame folders.
    """
    root = Path(root)
    wb = Path(workbook) if workbook else next(iter(sorted(root.glob("CAS(ME)3_part_A*.xls*"))), root / "CAS(ME)3_part_A_v2.xls")
    labels_wb = Path(micro_labels) if micro_labels else next(
        iter(sorted(root.glob("cas(me)3_part_A_ME_label*.xls*"))), None)
    frames_root = Path(frames_root) if frames_root else root
    all_sheets = _read_sheets(wb, header=0)
    sheet_name, sheet = next(iter(all_sheets.items()))
    where0 = f"{wb}, sheet '{sheet_name}'"
    cols = _columns(sheet, ("subject", "filename", "onset", "apex", "offset", "au", "type"), where0)

    micro_emotion: Dict[Tuple[str, str, int], str] = {}
    if labels_wb is not None:
        label_sheets = _read_sheets(labels_wb, header=0)
        if "label" not in label_sheets:
            raise UserError(f"{labels_wb}: sheet 'label' not found (sheets: {list(label_sheets)})")
        lab = label_sheets["label"]
        lcols = _columns(lab, ("subject", "filename", "onset", "apex", "emotion"), f"{labels_wb}, sheet 'label'")
        for i, r in enumerate(lab.itertuples(index=False), start=2):
            r = dict(zip(lab.columns, r))
            where = f"{labels_wb}, sheet 'label', row {i}"
            if _cell_str(r[lcols["subject"]]) == "":
                continue
            key_s, key_f = _norm_subject(r[lcols["subject"]]), _cell_str(r[lcols["filename"]]).lower()
            emotion = _cell_str(r[lcols["emotion"]]).lower()
            for frame_col in ("onset", "apex"):
                micro_emotion[(key_s, key_f, _cell_int(r[lcols[frame_col]], where, frame_col))] = emotion

    rows, lengths = [], {}
    for i, r in enumerate(sheet.itertuples(index=False), start=2):  # row 1 is the header
        r = dict(zip(sheet.columns, r))
        if all(_cell_str(v) == "" for v in r.values()):
            continue
        where = f"{where0}, row {i}"
        subject = _cell_str(r[cols["subject"]])
        filename = _cell_str(r[cols["filename"]])
        if not subject or not filename:
            raise UserError(f"{where}: subject or filename is empty")
        onset = _cell_int(r[cols["onset"]], where, "onset")
        apex = _cell_int(r[cols["apex"]], where, "apex")
        offset = fill_offset(onset, apex, _cell_int(r[cols["offset"]], where, "offset"), missing_offset, where)
        if offset is None:
            continue
        if onset > offset:
            raise UserError(f"{where}: onset {onset} is after offset {offset}")
        etype = _expression_type(r[cols["type"]], where)
        emotion_raw = ""
        if etype == "micro":
            key = (_norm_subject(subject), filename.lower())
            emotion_raw = micro_emotion.get((*key, onset), micro_emotion.get((*key, apex), ""))
        vkey = (subject.lower(), filename.lower())
        if vkey not in lengths:
            source = _find_casme3_source(frames_root, subject, filename, where)
            lengths[vkey] = (source, *video_length(source))
        source, n_frames, first, video_fps = lengths[vkey]
        rows.append(dict(
            dataset="casme3a", subject=Path(source).relative_to(frames_root).parts[0], video=filename.lower(),
            onset=onset, apex=apex, offset=offset, type=etype, emotion=to_emotion4(emotion_raw),
            emotion_raw=emotion_raw, self_report="", aus=_cell_str(r[cols["au"]]), n_frames=n_frames,
            fps=video_fps or CASME3_FPS, source=str(source), first_frame=first, row=where,
        ))
    if not rows:
        raise UserError(f"{where0}: no expression rows")
    return make_table(rows)
