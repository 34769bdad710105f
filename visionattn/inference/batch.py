"""A batch of videos for ``visionattn detect``: shared over the launched processes, then pooled.

Every process expands the same VIDEO arguments into the same clips and names
(:mod:`.inputs`), and :func:`~visionattn.utils.distributed.partition` splits them by frame
count, so each clip is done by exactly one process (one process without a launcher). When a
process has done its share it meets the others at a gloo collective
(:class:`~visionattn.utils.distributed.ProcessGroup`): rank 0 then knows every share is on disk
(or which clips failed, or that a process died with an error) and writes the batch's files
once: ``detections.csv``, every done clip's rows in the MEGC layout ``visionattn evaluate``
reads, and with ``--report`` ``index.html``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

from ..data.frames import DEFAULT_FPS, VideoPart, probe
from ..evaluation import Interval, read_intervals_csv, write_intervals_csv
from ..utils import UserError, counted
from ..utils.distributed import (DEFAULT_TIMEOUT_MIN, Launch, ProcessGroup, describe_error, launch_environment,
                                 partition, rank_printer)
from .inputs import INDEX_PAGE, POOLED_CSV, Clip, expand_videos, outputs_for

Failure = Tuple[str, str]  # (clip name, one-line error)
ShareRunner = Callable[[Sequence[Clip], Callable[[str], None], bool], Tuple[List[Path], List[Failure]]]


def run_batch(arguments: Sequence[str], out: Path, detect_share: ShareRunner, report: bool = False,
              timeout_min: float = DEFAULT_TIMEOUT_MIN, progress: bool = True,
              part: VideoPart = VideoPart()) -> List[Path]:
    """Expand ``arguments``, run ``detect_share(clips, say, progress)`` on this process's share
    (it returns the JSON paths written and the clips that failed), wait for the other
    processes, and on rank 0 write the batch's files. Returns this process's JSON paths.

    Raises ``UserError`` when a clip failed (rank 0 names them all, the other ranks their own)
    or a process stopped with an error (every rank names it)."""
    out = Path(out)
    clips = expand_videos(arguments, exclude=out)
    launch = launch_environment()
    say = rank_printer(launch)
    mine = share_of(clips, launch, part)
    if launch.world_size > 1:
        say(f"{len(mine)} of {counted(len(clips), 'video')}: {', '.join(c.name for c in mine) or '-'}")
    group = ProcessGroup(launch, timeout_min)
    outcome: Dict = {"rank": launch.rank, "failed": [], "error": None}
    try:
        try:
            written, failed = detect_share(mine, say, progress and launch.rank == 0)
        except Exception as exc:
            outcome["error"] = describe_error(exc)
            group.all_gather(outcome)  # the others learn of it now, not at their timeout
            raise
        outcome["failed"] = failed
        outcomes = group.all_gather(outcome)
    finally:
        group.close()
    stopped = [o for o in outcomes if o["error"] and o["rank"] != launch.rank]
    if stopped:
        raise UserError("; ".join(f"rank {o['rank']} failed: {o['error']}" for o in stopped))
    failures = dict(f for o in outcomes for f in o["failed"])
    if launch.rank == 0:
        write_batch_files(clips, out, failures, report, say)
    mine_failed = failures if launch.rank == 0 else dict(failed)
    if mine_failed:
        raise UserError(f"{len(mine_failed)} of {counted(len(clips), 'video')} failed: "
                        f"{', '.join(sorted(mine_failed))}")
    return written


def share_of(clips: Sequence[Clip], launch: Launch, part: VideoPart = VideoPart()) -> List[Clip]:
    """This process's clips: all of them for one process, else its :func:`partition` share by
    frame count (a clip that cannot be probed counts 0; it fails with its message later)."""
    if launch.world_size == 1:
        return list(clips)
    frames = {clip.name: _frame_count(clip, part) for clip in clips}
    names = set(partition(frames, launch.world_size)[launch.rank])
    return [clip for clip in clips if clip.name in names]


def _frame_count(clip: Clip, part: VideoPart) -> int:
    try:
        return part.frames_of(probe(clip.path, fps=part.fps or DEFAULT_FPS))
    except UserError:
        return 0


def write_batch_files(clips: Sequence[Clip], out: Path, failures: Dict[str, str], report: bool,
                      say: Callable[[str], None] = print) -> None:
    """``detections.csv`` (every done clip's rows) and, with ``report``, ``index.html``; says
    where they are and warns about clips whose rows ``evaluate`` could not tell apart."""
    done = [clip for clip in clips if clip.name not in failures]
    rows: List[Interval] = []
    owners: Dict[Tuple[str, str], List[str]] = {}
    for clip in done:
        found = read_intervals_csv(outputs_for(out, clip.name)["csv"], require_score=True)
        rows.extend(found)
        for key in dict.fromkeys((row.subject, row.video) for row in found):
            owners.setdefault(key, []).append(clip.name)
    pooled = out / POOLED_CSV
    write_intervals_csv(pooled, rows)
    for (subject, video), names in owners.items():
        if len(names) > 1:
            say(f"warning: {', '.join(names)} all write rows as subject {subject}, video {video}: "
                f"{POOLED_CSV} pools them; run them separately to score them apart")
    summary = (f"{counted(len(clips), 'video')}: {len(done)} done" + (f", {len(failures)} failed" if failures else "")
               + f"; {counted(len(rows), 'expression')} in {pooled}")
    if report:
        _write_index(clips, out, failures, pooled)
        summary += f"; report: {out / INDEX_PAGE}"
    say(summary)


def _write_index(clips: Sequence[Clip], out: Path, failures: Dict[str, str], pooled: Path) -> None:
    from .report import IndexEntry, write_index
    from .result import VideoResult

    entries = []
    for clip in clips:
        paths = outputs_for(out, clip.name)
        if clip.name in failures:
            entries.append(IndexEntry(clip.name, str(clip.path), error=failures[clip.name]))
        else:
            entries.append(IndexEntry(clip.name, str(clip.path), VideoResult.read_json(paths["json"]),
                                      page=paths["report"].name))
    write_index(entries, out / INDEX_PAGE, pooled_csv=pooled)
