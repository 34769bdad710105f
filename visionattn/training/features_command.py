"""``visionattn features``: extract a dataset's per-frame features before training, on many processes.

    visionattn features --config configs/fedn/base.yaml --config configs/fedn/casme2.yaml
    torchrun --nproc_per_node 8 -m visionattn.cli features --config ... -- --data.feature_device=cuda
    srun --ntasks 16 visionattn features --config ...                     # SLURM, any number of nodes

It reads the same YAML as ``visionattn train`` (``data.*`` decides what is extracted and where
it is cached), so training then finds every cache ready. The rank and the number of processes
come from the launcher (:func:`~visionattn.utils.distributed.launch_environment`: torchrun or
SLURM; one process otherwise). The videos are split by
:func:`~visionattn.utils.distributed.partition`, so each is extracted by exactly one process;
``data.cache_root`` must be a folder every node sees.

Resumable: cached videos are skipped, and a video interrupted half way resumes at its last
written chunk (:mod:`visionattn.data.cache`), so rerunning the same command finishes the job.

Synchronisation is a gloo process group (``env://``), not marker files: the frame encoder's
pretraining (``data.features.pretrain``) runs on rank 0 while the others wait at a collective,
and an error on one rank reaches the others at once instead of leaving them waiting out a
timeout; it also gathers every rank's outcome for the summary. gloo runs on CPU, so it needs no
GPU and does not disturb a later NCCL training run.
"""
from __future__ import annotations

import argparse
from typing import Any, Dict, Mapping, Sequence

from ..utils import UserError
from ..utils.distributed import (DEFAULT_TIMEOUT_MIN, Launch, ProcessGroup, describe_error, launch_environment,
                                 local_device, partition, rank_printer)

__all__ = ["Launch", "launch_environment", "partition", "add_arguments", "datamodule", "run"]


# ---------------------------------------------------------------- command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", action="append", required=True,
                        help="the same YAML(s) `visionattn train` takes (repeatable)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_MIN, metavar="MIN",
                        help="minutes a process waits for the others (rank 0's encoder pretraining, the "
                             f"slowest share; default {DEFAULT_TIMEOUT_MIN:g})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", help="extra LightningCLI overrides, e.g. --data.root=... "
                        "(put them after `--`)")


def datamodule(configs: Sequence[str], overrides: Sequence[str] = ()):
    """The ``ExpressionDataModule`` of the FEDN configs, parsed exactly as ``visionattn train``
    parses them; no trainer is built (extraction nodes need not match the training hardware,
    and Lightning would refuse a launcher world size that differs from ``trainer.devices``)."""
    from .cli import fedn_cli

    try:
        cli = fedn_cli(list(overrides), run=False, configs=configs, trainer=False,
                       parser_kwargs={"exit_on_error": False})
    except argparse.ArgumentError as err:
        # jsonargparse names the key (and the file) on its message's first lines
        message = " ".join(line.strip() for line in str(err).splitlines()[:2] if line.strip())
        raise UserError(f"{message} (configs: {', '.join(map(str, configs))})") from None
    return cli.datamodule


def run(args: argparse.Namespace) -> dict:
    """Extract this process's share of the videos; rank 0 returns (and prints) the summary of
    :func:`_summary`, the other ranks ``{}``."""
    from ..data.cache import ArrayCache
    from ..data.datasets import load_table
    from ..data.identifiers import video_id
    from ..features.contract import FeatureContract

    launch = launch_environment()
    say = rank_printer(launch)
    # Every rank parses the config and reads the table before any waiting, so a user mistake
    # stops all of them alike with the same one-line error.
    dm = datamodule(args.config, args.overrides)
    dm.feature_device = local_device(dm.feature_device, launch)  # one GPU per process on each node
    table = load_table(dm.dataset, dm.root, dm.missing_offset)
    first = table.drop_duplicates(["subject", "video"])
    frames = {video_id(s, v): int(n) for s, v, n in zip(first["subject"], first["video"], first["n_frames"])}
    mine = partition(frames, launch.world_size)[launch.rank]
    progress = not args.no_progress and launch.rank == 0

    group = ProcessGroup(launch, args.timeout)
    try:
        # Rank 0 pretrains the frame encoder (when configured; a finished one is reused) by
        # preparing no videos; the others wait for its outcome.
        error = None
        if launch.rank == 0:
            try:
                dm.prepare_features(videos=[], progress=progress)
            except Exception as exc:
                error = describe_error(exc)
                group.broadcast(error)
                raise
        error = group.broadcast(error)
        if error is not None:
            raise UserError(f"rank 0 failed before extraction: {error}")

        settings = dm.frame_features(table, dm.split(table), prepare=False)
        cache = ArrayCache(dm.cache_root, FeatureContract(settings, dm.fps).cache_key())
        state = {vid: _state(cache, vid) for vid in mine}
        todo = [vid for vid in mine if state[vid] != "cached"]
        say(f"{len(mine)} videos, {sum(frames[v] for v in mine)} frames: "
            f"{len(todo)} to extract ({', '.join(todo) or '-'}), {len(mine) - len(todo)} cached already")
        outcome: Dict[str, Any] = {"rank": launch.rank, "state": state, "error": None}
        try:
            dm.prepare_features(videos=todo, progress=progress)
        except Exception as exc:
            outcome["error"] = describe_error(exc)
            group.all_gather(outcome)
            raise
        say(f"done: extracted {', '.join(todo) or 'nothing'}")
        outcomes = group.all_gather(outcome)
    finally:
        group.close()
    failed = [o for o in outcomes if o["error"]]
    if failed:
        raise UserError("; ".join(f"rank {o['rank']} failed: {o['error']}" for o in failed))
    if launch.rank != 0:
        return {}
    summary = _summary(cache, frames, {vid: s for o in outcomes for vid, s in o["state"].items()})
    print(_format_summary(summary, cache), flush=True)
    return summary


def _state(cache, vid: str) -> str:
    """``cached``, ``partial`` (an interrupted write to resume) or ``new``."""
    if cache.exists(vid):
        return "cached"
    partial = cache.path(vid).with_name(cache.path(vid).name + ".partial")
    return "partial" if partial.is_file() else "new"


def _summary(cache, frames: Mapping[str, int], before: Mapping[str, str]) -> dict:
    """Counts over the whole dataset from the cache metadata (every rank's videos)."""
    missing = [vid for vid in frames if not cache.exists(vid)]
    if missing:
        raise UserError(f"{cache.folder}: no features for {', '.join(sorted(missing))} after extraction")
    no_face, frames_cached, frames_without = [], 0, 0
    for vid in sorted(frames):
        meta = cache.load_meta(vid)
        frames_cached += int(meta["frame_count"])
        faces = meta.get("faces") or {}
        # the landmark tracker's report counts frames without a face; the Haar pipeline's,
        # frames without an accepted detection (and says whether any face was found)
        without = int(faces.get("no_face_count", faces.get("missing_count", 0)))
        frames_without += without
        if not faces.get("face_found", without < int(faces.get("frames_seen", meta["frame_count"]))):
            no_face.append(vid)
    return {
        "videos": len(frames),
        "extracted": sorted(v for v, s in before.items() if s != "cached"),
        "resumed": sorted(v for v, s in before.items() if s == "partial"),
        "already_cached": sorted(v for v, s in before.items() if s == "cached"),
        "frames": frames_cached,
        "face_found": len(frames) - len(no_face),
        "no_face": no_face,
        "frames_without_face": frames_without,
    }


def _format_summary(s: dict, cache) -> str:
    lines = [f"features of {s['videos']} videos in {cache.folder}:",
             f"  extracted now   {len(s['extracted'])} ({len(s['resumed'])} resumed after an interruption)",
             f"  already cached  {len(s['already_cached'])}",
             f"  frames          {s['frames']} ({s['frames_without_face']} without a face)",
             f"  face found in   {s['face_found']} videos; no face in {len(s['no_face'])}"
             + (f" ({', '.join(s['no_face'])})" if s["no_face"] else "")]
    return "\n".join(lines)

