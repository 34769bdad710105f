"""What ``visionattn detect`` is asked to read: its VIDEO arguments expanded into clips.

An argument is one of:

- a **video file** (any name OpenCV opens that is not a list, below);
- a **folder of numbered frames**: a folder with image files in it (``.jpg .jpeg .png .bmp``),
  read as one clip whatever else it holds;
- a **folder of videos**: a folder without images in it; every video file (by extension,
  :data:`VIDEO_EXTENSIONS`) and every frame folder below it, at any depth (a dataset tree
  such as ``rawvideo/s15/*.avi`` or ``SAMM_LV/006_1/*.jpg``); hidden entries and the output
  folder are passed over;
- a **glob** (``'clips/*.mp4'``, ``'data/**/*.avi'``; quoted, so the shell leaves it): each
  match is read as an argument of its own;
- a **list**: a text file named ``*.txt`` or ``*.list``, one path (or glob) per line, blank
  lines and ``#`` comments skipped; relative paths are from the list's folder.

Each clip gets an output name (:func:`output_names`): its file or folder name without the
extension, or, where two clips of the batch share it, as many parent folder names before it as
tell them apart (``s15__anger1`` and ``s16__anger1``). Names depend only on the set of clips,
never on the order of the arguments or on the process, so every rank of a batch and every
rerun of it agree.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

from ..data.frames import IMAGE_EXTENSIONS
from ..utils import UserError

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv",
                              ".mts", ".m2ts", ".ts", ".3gp", ".ogv"})
LIST_EXTENSIONS = frozenset({".txt", ".list"})
NAME_SEPARATOR = "__"
POOLED_CSV = "detections.csv"  # the batch's pooled rows
INDEX_PAGE = "index.html"  # the batch's report index
RESERVED_NAMES = frozenset({Path(POOLED_CSV).stem, Path(INDEX_PAGE).stem})
"""A clip named like a batch file takes its folder's name before it, as a duplicate would."""


@dataclass(frozen=True)
class Clip:
    """One video to detect in: ``path`` (a video file or a frame folder, as given, resolved
    for comparisons), its ``kind`` (``"video"`` or ``"frames"``) and output ``name``."""

    path: Path
    kind: str
    name: str = ""

    @property
    def frame_folder(self) -> bool:
        return self.kind == "frames"


def outputs_for(out: Path, name: str) -> Dict[str, Path]:
    """The output files in ``out`` of the clip named ``name``."""
    return {"json": out / f"{name}.json", "csv": out / f"{name}.csv", "timeline": out / f"{name}_timeline.png",
            "signals": out / f"{name}_signals.npz", "frames": out / f"{name}_frames.csv",
            "annotated": out / f"{name}_annotated.mp4",
            "report": out / f"{name}_report.html", "report_video": out / f"{name}_report.mp4"}


def expand_videos(arguments: Sequence[str], exclude: Optional[Path] = None) -> List[Clip]:
    """The clips ``arguments`` name (see the module docstring), each once, in the order first
    named, with unique output names. ``exclude``: a folder whose contents are never inputs
    (the output folder: its annotated videos must not become the next run's inputs).

    A path that does not exist is kept as a video (reading it fails, and says so, while the
    others still run). Raises ``UserError`` for an argument that names nothing else: a glob
    without matches, a folder without videos or images, an empty list."""
    seen: Dict[Path, Clip] = {}
    excluded = exclude.resolve() if exclude is not None else None
    for argument in arguments:
        for clip in _expand(str(argument), excluded, Path.cwd(), depth=0):
            seen.setdefault(clip.path.resolve(), clip)
    clips = list(seen.values())
    names = output_names([c.path for c in clips])
    return [Clip(c.path, c.kind, names[c.path.resolve()]) for c in clips]


def output_names(paths: Sequence[Path]) -> Dict[Path, str]:
    """A unique output name per path (keys: the resolved paths): the stem of a video file or the
    name of a folder (with its extension, ``x_avi``, beside a namesake in the same folder);
    where several share one, each takes parent folder names before it, joined by ``__``, until
    all differ."""
    resolved = list(dict.fromkeys(Path(p).resolve() for p in paths))
    stems = {p: p.stem if p.suffix.lower() in VIDEO_EXTENSIONS else p.name for p in resolved}
    siblings: Dict[tuple, int] = {}
    for p in resolved:
        siblings[(p.parent, stems[p])] = siblings.get((p.parent, stems[p]), 0) + 1
    stems = {p: f"{stem}_{p.suffix.lstrip('.').lower()}" if siblings[(p.parent, stem)] > 1 else stem
             for p, stem in stems.items()}
    names: Dict[Path, str] = {}
    pending, depth = resolved, 0
    while pending:
        candidates = {p: _name_with_parents(p, stems[p], depth) for p in pending}
        counts: Dict[str, int] = {}
        for name in list(candidates.values()) + list(names.values()):
            counts[name] = counts.get(name, 0) + 1
        for p, name in candidates.items():
            if (counts[name] == 1 and name not in RESERVED_NAMES) or depth >= len(p.parents):
                names[p] = name
        pending = [p for p in pending if p not in names]
        depth += 1
    return names


def _name_with_parents(path: Path, stem: str, depth: int) -> str:
    parents = [q.name for q in path.parents][:depth][::-1]
    return NAME_SEPARATOR.join([n for n in parents if n] + [stem])


def _expand(argument: str, exclude: Optional[Path], base: Path, depth: int) -> List[Clip]:
    path = Path(argument).expanduser()
    if not path.is_absolute():
        path = base / path
    if path.is_dir():
        if _has_images(path):
            return [Clip(path, "frames")]
        found = list(_walk(path, exclude))
        if not found:
            raise UserError(f"{argument}: folder has no videos ({_extensions(VIDEO_EXTENSIONS)}) and no numbered "
                            f"frames ({_extensions(IMAGE_EXTENSIONS)}), in it or below it")
        return found
    if path.is_file():
        if path.suffix.lower() in LIST_EXTENSIONS:
            if depth > 0:
                raise UserError(f"{argument}: a list inside a list is not read")
            return _read_list(path, exclude)
        return [Clip(path, "video")]
    if glob.has_magic(argument):
        matches = sorted(glob.glob(str(path), recursive=True))
        if not matches:
            raise UserError(f"{argument}: no file or folder matches this pattern")
        return [clip for match in matches if not _inside(Path(match), exclude)
                for clip in _expand(match, exclude, base, depth)]
    # a missing video fails when it is read, named in one line, while the others still run
    return [Clip(path, "video")]


def _read_list(path: Path, exclude: Optional[Path]) -> List[Clip]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text list of videos (one path per line)") from None
    clips: List[Clip] = []
    for number, line in enumerate(lines, 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        try:
            clips.extend(_expand(entry, exclude, path.parent, depth=1))
        except UserError as err:
            raise UserError(f"{path}, line {number}: {err}") from None
    if not clips:
        raise UserError(f"{path}: the list names no videos")
    return clips


def _walk(folder: Path, exclude: Optional[Path]) -> Iterable[Clip]:
    """Video files and frame folders below ``folder``, in sorted order; a frame folder is not
    entered (its images are one clip)."""
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _inside(here / d, exclude))
        frame_dirs = [d for d in dirs if _has_images(here / d)]
        for d in frame_dirs:
            yield Clip(here / d, "frames")
        dirs[:] = [d for d in dirs if d not in frame_dirs]
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_EXTENSIONS:
                yield Clip(here / name, "video")


def _has_images(folder: Path) -> bool:
    try:
        return any(e.suffix.lower() in IMAGE_EXTENSIONS and e.is_file() for e in folder.iterdir())
    except OSError:
        return False


def _inside(path: Path, folder: Optional[Path]) -> bool:
    if folder is None:
        return False
    resolved = path.resolve()
    return resolved == folder or folder in resolved.parents


def _extensions(extensions: Iterable[str]) -> str:
    return " ".join(sorted(extensions))
