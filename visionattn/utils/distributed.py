"""Many processes on one job: who this process is, how work is split, and how they meet.

The rank and the number of processes come from the launcher: torchrun's ``RANK`` /
``WORLD_SIZE`` / ``LOCAL_RANK`` (``fabric run`` launches through torchrun too), else SLURM's
``SLURM_PROCID`` / ``SLURM_NTASKS`` / ``SLURM_LOCALID``; one process otherwise
(:func:`launch_environment`). Work (videos) is split by :func:`partition`, which every process
computes alike, so each item is done by exactly one. :class:`ProcessGroup` is a gloo group
(``env://``): collectives rather than marker files, so an error on one rank reaches the others
at once instead of leaving them waiting out a timeout; gloo runs on CPU, so it needs no GPU and
does not disturb a later NCCL training run. Used by ``visionattn features`` and
``visionattn detect``.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Callable, List, Mapping, Optional

from .errors import UserError

DEFAULT_TIMEOUT_MIN = 720.0  # a wait covers the slowest share of a long job


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


class ProcessGroup:
    """gloo collectives among the launched processes (none with one process).

    Joins the default process group when the caller already initialised one (e.g. a script
    run under torchrun that set up its own), and then leaves it for the caller to close."""

    def __init__(self, launch: Launch, timeout_min: float = DEFAULT_TIMEOUT_MIN):
        self.launch = launch
        self.dist = None
        self.owned = False
        if launch.world_size == 1:
            return
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            self.dist = dist
            return

        if launch.launcher == "slurm":
            _slurm_rendezvous()
        missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise UserError(f"{launch.launcher}: {', '.join(missing)} not set (needed to connect the processes)")
        dist.init_process_group("gloo", init_method="env://", rank=launch.rank, world_size=launch.world_size,
                                timeout=datetime.timedelta(minutes=timeout_min))
        self.dist = dist
        self.owned = True

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
        if self.owned and self.dist.is_initialized():
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


def local_device(device: str, launch: Launch) -> str:
    """``cuda`` becomes ``cuda:<local rank>`` when several processes share a node's GPUs (one
    each); any other device, or one process, is returned as given."""
    return f"cuda:{launch.local_rank}" if device == "cuda" and launch.world_size > 1 else device


def rank_printer(launch: Launch) -> Callable[[str], None]:
    """``print`` with this process's ``[rank r/n]`` prefix when there are several processes
    (their stdout interleaves line by line; the prefix tells them apart)."""
    def say(text: str) -> None:
        prefix = f"{launch.prefix} " if launch.world_size > 1 else ""
        print(f"{prefix}{text}", flush=True)
    return say


def describe_error(exc: BaseException) -> str:
    """One line for another rank to report: a ``UserError``'s message, else the type and message."""
    return str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
