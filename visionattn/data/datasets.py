"""One entry point for every expression dataset: read its annotation workbooks
(:func:`load_annotations`, no frames needed), attach the frame sources
(:func:`attach_sources`), or both (:func:`load_table`).

=========  ==========================================  ===============================
dataset    workbooks (looked for in the root folder)   frames (default frames_root)
=========  ==========================================  ===============================
casme2     ``CAS(ME)^2code_final.xlsx`` or the MEGC     ``root/rawpic`` (else root):
           copy ``CASME_sq_gt.xlsx``                    ``s15/15_0101*/img1.jpg``
synthetic  as casme2 (written by ``visionattn synth``)  as casme2
samm       ``SAMM_LongVideos_V*_Release.xlsx`` or       ``root/SAMM_longvideos`` (else
           the MEGC copy ``SAMMLV_gt.xlsx``             root): ``006_1/006_1_0001.jpg``
casme3     ``cas(me)3_part_A_ME_label*.xlsx`` (micro    ``root/part_A`` (else root):
           labels), ``CAS(ME)3_part_A*.xls`` (all       ``spNO.1/a/color/<n>.jpg``
           expressions) and ``*MaE_label*`` (macro
           emotions) where present
=========  ==========================================  ===============================
"""
from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

from ..utils import UserError
from .annotations import COLUMNS, MissingOffset, read_workbook, video_length
from .casme import (CASME2_WORKBOOKS, casme2_source, casme3_source, load_casme2_annotations,
                    load_casme3_annotations)
from .samm import SAMM_FOLDER, load_samm_annotations, samm_source

DATASETS = ("casme2", "samm", "casme3", "synthetic")
Paths = Union[os.PathLike, str, Sequence[Union[os.PathLike, str]]]

_PATTERNS = {
    "casme2": list(CASME2_WORKBOOKS) + ["cas(me)^2code_final*.xls*"],
    "samm": ["samm_longvideos_v*_release.xls*", "sammlv_gt.xls*", "samm_longvideos*.xls*"],
    "casme3": ["cas(me)3_part_a*.xls*", "casme3_part_a*.xls*"],
}
_SOURCES: Dict[str, Callable[[Path, str, str], Path]] = {
    "casme2": casme2_source, "synthetic": casme2_source, "samm": samm_source, "casme3": casme3_source,
}


def _check(dataset: str) -> str:
    if dataset not in DATASETS:
        raise UserError(f"dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
    return dataset


def find_workbooks(dataset: str, root: os.PathLike) -> List[Path]:
    """The annotation workbooks of ``dataset`` in the folder ``root`` (file names compared
    case-insensitively); casme2 and samm: the first match, casme3: all its workbooks."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: dataset folder not found")
    kind = "casme2" if dataset == "synthetic" else _check(dataset)
    names = sorted(p.name for p in root.iterdir() if p.is_file() and not p.name.startswith((".", "~$")))
    found: List[Path] = []
    for pattern in _PATTERNS[kind]:
        for name in names:
            if fnmatch.fnmatch(name.lower(), pattern.lower()) and root / name not in found:
                found.append(root / name)
    if not found:
        raise UserError(f"{root}: no {dataset} annotation workbook (looked for {', '.join(_PATTERNS[kind])})")
    if kind == "samm":
        # The newest release first: V3 before V2 before V1.
        releases = sorted((p for p in found if p.name.lower().startswith("samm_longvideos_v")), reverse=True)
        found = releases + [p for p in found if p not in releases]
    return found if kind == "casme3" else found[:1]


def _casme3_roles(paths: Sequence[Path]) -> Dict[str, Path]:
    """micro / macro label workbooks and the all-expression workbook, by name, else by content."""
    roles: Dict[str, Path] = {}
    for path in paths:
        low = path.name.lower()
        if "mae_label" in low:
            role = "macro_labels"
        elif "me_label" in low or "label" in read_workbook(path):
            role = "micro_labels"
        else:
            role = "workbook"
        if role in roles:
            raise UserError(f"{path}: a second CAS(ME)^3 {role.replace('_', ' ')} workbook (first: {roles[role]})")
        roles[role] = path
    return roles


def load_annotations(dataset: str, workbooks_or_root: Paths, missing_offset: MissingOffset = "apex",
                     onset_zero: str = "drop", strict: bool = False):
    """The expression table of ``dataset`` read from its workbooks alone (no frames needed).

    Args:
        dataset: casme2, samm, casme3 or synthetic (the casme2 layout).
        workbooks_or_root: a workbook, several (CAS(ME)^3: labels and all-expression), or the
            folder holding them (see :func:`find_workbooks`).
        missing_offset: policy for offset 0 (apex, drop, error or a number of frames).
        onset_zero: SAMM-LV rows with onset 0: drop (default, as the published baselines) or keep.
        strict: refuse a malformed row (frame number missing, onset after apex or offset, apex
            outside the interval) instead of dropping it and reporting it among the quirks.
    Returns:
        a table with :data:`~visionattn.data.annotations.ANNOTATION_COLUMNS` and frame numbers
        as the workbooks give them (SAMM-LV's decimals rounded); ``attrs["quirks"]`` is
        ``{what was done: rows}`` and ``attrs["workbooks"]`` the files read.
    """
    _check(dataset)
    if isinstance(workbooks_or_root, (str, os.PathLike)):
        given = [Path(workbooks_or_root)]
    else:
        given = [Path(p) for p in workbooks_or_root]
    if not given:
        raise UserError(f"{dataset}: no annotation workbook given")
    paths: List[Path] = []
    for p in given:
        if p.is_dir():
            paths += find_workbooks(dataset, p)
        elif not p.is_file():
            raise UserError(f"{p}: annotation workbook not found")
        else:
            paths.append(p)
    if dataset == "casme3":
        table = load_casme3_annotations(missing_offset=missing_offset, strict=strict, **_casme3_roles(paths))
    else:
        if len(paths) != 1:
            raise UserError(f"{dataset}: expected one annotation workbook, got {len(paths)}: "
                            f"{', '.join(map(str, paths))}")
        if dataset == "samm":
            table = load_samm_annotations(paths[0], missing_offset, onset_zero, strict=strict)
        else:
            table = load_casme2_annotations(paths[0], missing_offset, dataset=dataset, strict=strict)
    table.attrs["workbooks"] = [str(p) for p in paths]
    return table


def default_frames_root(dataset: str, root: os.PathLike) -> Path:
    """Where a dataset folder keeps its frames (see the module table)."""
    root = Path(root)
    sub = {"casme2": "rawpic", "synthetic": "rawpic", "samm": SAMM_FOLDER, "casme3": "part_A"}[_check(dataset)]
    return root / sub if (root / sub).is_dir() else root


def attach_sources(table, dataset: str, frames_root: os.PathLike):
    """``table`` with the frame columns added: ``source`` (frame folder or video file),
    ``n_frames`` and ``first_frame`` (the number of its first image; 1 for a video file),
    and ``fps`` from a video file that states one. Columns in the order of
    :data:`~visionattn.data.annotations.COLUMNS`.

    Raises UserError naming the missing folder and the first workbook row that needs it.
    """
    find = _SOURCES[_check(dataset)]
    frames_root = Path(frames_root)
    if not frames_root.is_dir():
        raise UserError(f"{frames_root}: frames folder not found")
    out = table.copy()
    for col, dtype in (("source", object), ("n_frames", "int64"), ("first_frame", "int64")):
        out[col] = None if dtype is object else 0
    for (subject, video), idx in table.groupby(["subject", "video"], sort=False).groups.items():
        try:
            source = find(frames_root, subject, video)
        except UserError as err:
            raise UserError(f"{err} (subject {subject}, video {video}: {len(idx)} expression(s), "
                            f"first at {table.loc[idx[0], 'row']})") from None
        n_frames, first, fps = video_length(source)
        out.loc[idx, "source"] = str(source)
        out.loc[idx, "n_frames"] = n_frames
        out.loc[idx, "first_frame"] = first
        if fps:
            out.loc[idx, "fps"] = fps
    result = out[list(COLUMNS)].astype(COLUMNS)
    result.attrs = dict(table.attrs)
    return result


def load_table(dataset: str, root: os.PathLike, missing_offset: MissingOffset = "apex",
               frames_root: Optional[os.PathLike] = None, onset_zero: str = "drop",
               workbooks: Optional[Sequence[os.PathLike]] = None):
    """A dataset folder read whole: :func:`load_annotations` of its workbooks (or of
    ``workbooks``) and :func:`attach_sources` with ``frames_root`` (default:
    :func:`default_frames_root`). Columns: :data:`~visionattn.data.annotations.COLUMNS`."""
    _check(dataset)
    if workbooks and dataset == "casme3":
        # Workbooks not given are still looked for in root (e.g. the labels beside a given .xls).
        given = [Path(p) for p in workbooks]
        try:
            found = find_workbooks(dataset, root)
        except UserError:
            found = []
        workbooks = given + [p for p in found if p.name.lower() not in {g.name.lower() for g in given}]
    table = load_annotations(dataset, list(workbooks) if workbooks else root, missing_offset, onset_zero)
    frames = Path(frames_root) if frames_root is not None else default_frames_root(dataset, root)
    return attach_sources(table, dataset, frames)


__all__ = ["DATASETS", "attach_sources", "default_frames_root", "find_workbooks", "load_annotations",
           "load_table"]
