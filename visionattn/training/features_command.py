"""``visionattn features``: extract a dataset's per-frame features before training, on many processes.

    visionattn features --config configs/fedn/base.yaml --config configs/fedn/casme2.yaml
    torchrun --nproc_per_node 8 -m visionattn.cli features --config ... -- --data.feature_device=cuda
    srun --ntasks 16 visionattn features --config ...                     # SLURM, any number of nodes

It reads the same YAML as ``visionattn train`` (``data.*`` decides what is extracted and where
it is cached), so training then finds every cache ready. The rank and the number of processes
come from the launcher: torchrun's ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` (``fabric run``
launches through torchrun too), else SLURM's ``SLURM_PROCID`` / ``SLURM_NTASKS`` /
``SLURM_LOCALID``; one process otherwise. The videos are split by :func:`partition`, so each is
extracted by exactly one process; ``data.cache_root`` must be a folder every node sees.

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
import datetime
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ..utils import UserError

DEFAULT_TIMEOUT_MIN = 720.0  # a wait covers rank 0's encoder pretraining or the slowest share


# ---------------------------------------------------------------- launcher and split
@dataclass(frozen=True)
class Launch:
    """This process's place in the job: ``rank`` in ``0..world_size-1``; ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launcher: str = "none"  # "torchrun", "slurm" or "none"

    @property
    def prefix(self) -> str:
        return f"[rank {self.rank}/{self.world_size}]"


def launch_environment(env: Optional[Mapping[str, str]] = None) -> Launch:
    """The rank and world size the launcher set: torchrun's (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``) first, then SLURM's (``SLURM_PROCID``, ``SLURM_STEP_NUM_TASKS`` or else
    ``SLURM_NTASKS``, ``SLURM_LOCALID``), else a single process."""
    env = os.environ if env is None else env

    def number(name: str, default: Optional[int] = None) -> int:
        value = env.get(name)
        if value is None:
            if default is None:
                raise UserError(f"environment variable {name} is not set (the launcher sets it)")
            return default
        try:
            return int(value)
        except ValueError:
            raise UserError(f"environment variable {name}={value!r}: not an integer") from None

    if "RANK" in env and "WORLD_SIZE" in env:
        launch = Launch(number("RANK"), number("WORLD_SIZE"), number("LOCAL_RANK", 0), "torchrun")
    elif "SLURM_PROCID" in env and ("SLURM_STEP_NUM_TASKS" in env or "SLURM_NTASKS" in env):
        # srun sets the step's task count; SLURM_NTASKS alone may be the whole allocation's
        tasks = "SLURM_STEP_NUM_TASKS" if "SLURM_STEP_NUM_TASKS" in env else "SLURM_NTASKS"
        launch = Launch(number("SLURM_PROCID"), number(tasks), number("SLURM_LOCALID", 0), "slurm")
    else:
        return Launch()
    if launch.world_size < 1 or not 0 <= launch.rank < launch.world_size:
        raise UserError(f"{launch.launcher}: rank {launch.rank} is not in 0..{launch.world_size - 1}")
    return launch


def partition(frames: Mapping[str, int], parts: int) -> List[List[str]]:
    """Split videos (id -> frame count) into ``parts`` shares of about equal frame totals.

    Longest first, each video goes to the share with the fewest frames so far (ties: the lower
    share); ids break ties between equal lengths, so every process computes the same split from
    the same table. Each share's total then exceeds the smallest share's by at most one video's
    length. Returns ``parts`` lists of ids, each sorted longest first."""
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts}")
    shares: List[List[str]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for vid in sorted(frames, key=lambda v: (-int(frames[v]), v)):
        i = min(range(parts), key=lambda k: (loads[k], k))
        shares[i].append(vid)
        loads[i] += int(frames[vid])
    return shares


# ---------------------------------------------------------------- process group
class _Group:
    """gloo collectives among the launched processes (none with one process)."""

    def __init__(self, launch: Launch, timeout_min: float):
        self.launch = launch
        self.dist = None
        if launch.world_size == 1:
            return
        import torch.distributed as dist

        if launch.launcher == "slurm":
            _slurm_rendezvous()
        missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise UserError(f"{launch.launcher}: {', '.join(missing)} not set (needed to connect the processes)")
        dist.init_process_group("gloo", init_method="env://", rank=launch.rank, world_size=launch.world_size,
                                timeout=datetime.timedelta(minutes=timeout_min))
        self.dist = dist

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if self.dist is None:
            return obj
        box = [obj]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_gather(self, obj: Any) -> List[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if self.dist is None:
            return [obj]
        out: List[Any] = [None] * self.launch.world_size
        self.dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self.dist is not None and self.dist.is_initialized():
            self.dist.destroy_process_group()


def _slurm_rendezvous() -> None:
    """MASTER_ADDR / MASTER_PORT as Lightning derives them under SLURM (first node of the job,
    port from the job id), so this command and ``visionattn train`` agree in one allocation."""
    if "MASTER_ADDR" not in os.environ:
        from lightning.fabric.plugins.environments import SLURMEnvironment

        os.environ["MASTER_ADDR"] = SLURMEnvironment.resolve_root_node_address(
            os.environ.get("SLURM_NODELIST", "127.0.0.1"))
    if "MASTER_PORT" not in os.environ:
        job = os.environ.get("SLURM_JOB_ID")
        os.environ["MASTER_PORT"] = str(15000 + int(job[-4:]) if job and job[-4:].isdigit() else 12910)


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
    say = _printer(launch)
    # Every rank parses the config and reads the table before any waiting, so a user mistake
    # stops all of them alike with the same one-line error.
    dm = datamodule(args.config, args.overrides)
    if dm.feature_device == "cuda" and launch.world_size > 1:
        dm.feature_device = f"cuda:{launch.local_rank}"  # one GPU per process on each node
    table = load_table(dm.dataset, dm.root, dm.missing_offset)
    first = table.drop_duplicates(["subject", "video"])
    frames = {video_id(s, v): int(n) for s, v, n in zip(first["subject"], first["video"], first["n_frames"])}
    mine = partition(frames, launch.world_size)[launch.rank]
    progress = not args.no_progress and launch.rank == 0

    group = _Group(launch, args.timeout)
    try:
        # Rank 0 pretrains the frame encoder (when configured; a finished one is reused) by
        # preparing no videos; the others wait for its outcome.
        error = None
        if launch.rank == 0:
            try:
                dm.prepare_features(videos=[], progress=progress)
            except Exception as exc:
                error = _describe(exc)
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
            outcome["error"] = _describe(exc)
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


def _printer(launch: Launch):
    def say(text: str) -> None:
        # stdout of several processes interleaves line by line; the prefix tells them apart
        prefix = f"{launch.prefix} " if launch.world_size > 1 else ""
        print(f"{prefix}{text}", flush=True)
    return say


def _state(cache, vid: str) -> str:
    """``cached``, ``partial`` (an interrupted write to resume) or ``new``."""
    if cache.exists(vid):
        return "cached"
    partial = cache.path(vid).with_name(cache.path(vid).name + ".partial")
    return "partial" if partial.is_file() else "new"


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"


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

