"""Expression pretraining of the frame encoder, on the training subjects only.

FEDN's frame encoder is a ResNet-18 pretrained for expression recognition (AffectNet in the
paper) and then frozen. No such weights can be downloaded here, and a randomly initialised
frozen encoder hardly sees a 3-pixel micro-expression. This step gives the encoder the same
kind of knowledge from the training subjects' own frames: every frame is labelled with the
intensity of the expression it shows (the raised-cosine ``onset -> apex -> offset`` profile
of :func:`visionattn.data.annotations.expression_profile`), overall and per emotion, and the
encoder learns to predict it frame by frame. Its classifier is then dropped and the backbone
becomes the frozen encoder whose features FEDN trains on.

It is part of making features, so it is a deterministic, cached step (like face detection),
not a second training job: :class:`~visionattn.training.datamodule.ExpressionDataModule` runs
it in ``prepare_data`` when ``features.pretrain`` is set, once per training split. The weights
are keyed by the settings and the exact training subjects, so a leave-one-subject-out fold
never uses an encoder that saw its test subject. An interrupted run resumes from its last
saved step.

Files written (``encoder.pth`` loads as ``features.checkpoint_path`` / ``timm``'s
``checkpoint_path``; the JSON records what it was trained on)::

    <cache_root>/encoders/<key>/encoder.pth     backbone weights, no classifier
    <cache_root>/encoders/<key>/encoder.json    subjects, settings, validation figures
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.annotations import EMOTIONS4, expression_profile
from ..data.cache import ArrayCache, cache_face_crops
from ..data.frames import DEFAULT_FPS
from ..data.identifiers import annotated_frame_numbers, video_id
from .contract import FeatureContract
from .frame_encoder import FrameEncoder, frames_to_rgb
from ..utils import UserError, atomic_path, atomic_write_json
from ..utils.console import progress_wanted
from .settings import EncoderPretraining, FeatureSettings

SIDECAR_SUFFIX = ".json"
_SAVE_EVERY = 50  # steps between resumable snapshots


def frame_targets(rows: pd.DataFrame, frame_numbers: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per-frame targets of one video: ``(T, 1 + 4)`` intensities in [0, 1] (any expression, then
    negative / positive / surprise / others) and a ``(T,)`` bool mask, False on frames of an
    expression whose emotion is unknown (their emotion channels carry no label).

    ``rows`` are the video's expressions in the dataset's frame numbering; ``frame_numbers``
    the number of each cached row (gaps allowed).
    """
    n = len(frame_numbers)
    targets = np.zeros((n, 1 + len(EMOTIONS4)), np.float32)
    known = np.ones(n, bool)
    for onset, apex, offset, emotion in zip(rows["onset"], rows["apex"], rows["offset"], rows["emotion"]):
        on, ap, off = np.clip(np.searchsorted(frame_numbers, [onset, apex, offset]), 0, n - 1)
        ap = min(max(ap, on), off)
        profile = expression_profile(n, int(on), int(ap), int(off))
        targets[:, 0] = np.maximum(targets[:, 0], profile)
        if emotion in EMOTIONS4:
            c = 1 + EMOTIONS4.index(emotion)
            targets[:, c] = np.maximum(targets[:, c], profile)
        else:
            known[profile > 0] = False
    return targets, known


@dataclass
class _Video:
    name: str
    crops: np.ndarray    # (T, S, S, 3) uint8 BGR, memory-mapped
    targets: np.ndarray  # (T, 1 + 4) from frame_targets
    known: np.ndarray    # (T,) bool


class ExpressionFrameModel(nn.Module):
    """A trainable :class:`FrameEncoder` plus a linear head: ``(N, 3, S, S)`` -> ``(N, 1 + 4)`` logits."""

    def __init__(self, settings: FeatureSettings):
        super().__init__()
        # Pretrained on pooled features; the grid pooling of features.pool_grid is applied later.
        self.encoder = FrameEncoder(settings.backbone, checkpoint_path=settings.checkpoint_path, frozen=False,
                                    image_size=settings.face_size, pool_grid=1)
        self.head = nn.Linear(self.encoder.num_features, 1 + len(EMOTIONS4))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x))


def augment(x: Tensor, shift: float, generator: torch.Generator) -> Tensor:
    """Random view of a batch of RGB images ``(N, 3, H, W)`` in [0, 1]: similarity transform
    (shift up to ``shift`` of the side, 5 % scale, 5 degrees), mirror image, and the colour
    changes between cameras and subjects (per-channel gain, gamma, contrast, brightness)."""
    n = x.shape[0]

    def u(*shape: int) -> Tensor:  # uniform in [-0.5, 0.5)
        return (torch.rand(*shape, generator=generator) - 0.5).to(x.device)

    angle, scale = u(n) * math.radians(10), 1 + u(n) * 0.1
    mirror = torch.where(u(n) < 0, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = torch.cos(angle) / scale * mirror
    theta[:, 0, 1] = -torch.sin(angle) / scale
    theta[:, 1, 0] = torch.sin(angle) / scale * mirror
    theta[:, 1, 1] = torch.cos(angle) / scale
    theta[:, :, 2] = u(n, 2) * 4 * shift  # the grid spans 2 units per side
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    x = x.clamp(1e-4, 1) ** (1 + u(n, 1, 1, 1) * 0.5)       # gamma 0.75..1.25
    x = x * (1 + u(n, 3, 1, 1) * 0.4)                       # per-channel gain 0.8..1.2
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (1 + u(n, 1, 1, 1) * 0.4) + mean + u(n, 1, 1, 1) * 0.2
    return x.clamp(0, 1)


def _loss(logits: Tensor, targets: Tensor, known: Tensor) -> Tensor:
    per = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    weight = torch.ones_like(per)
    weight[:, 1:] = known[:, None].float()
    return (per * weight).sum() / weight.sum().clamp_min(1)


def encoder_key(settings: FeatureSettings, root: str, train: Sequence[str], val: Sequence[str]) -> dict:
    """What an encoder's identity depends on: feature settings, dataset, and the subjects."""
    key = settings.key_settings()
    key.pop("pool_grid", None)  # applied after pretraining; the same encoder serves every grid
    key.pop("dtype", None)
    return {"features": key, "dataset_root": str(Path(root).resolve()), "train": sorted(train), "val": sorted(val)}


def check_not_trained_on(checkpoint: str, root: str, subjects: Sequence[str]) -> None:
    """Refuse an encoder whose record says it learned from any of ``subjects`` of this dataset."""
    sidecar = Path(checkpoint).with_suffix(SIDECAR_SUFFIX)
    if not sidecar.is_file():
        return
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if record.get("dataset_root") != str(Path(root).resolve()):
        return
    seen = sorted(set(record.get("train_subjects", [])) & set(subjects))
    if seen:
        raise UserError(f"{checkpoint}: this frame encoder was pretrained on {seen} ({sidecar}), "
                        f"which this run validates or tests on; pretrain it without them "
                        f"(set data.features.pretrain instead of a checkpoint_path)")


def pretrain_frame_encoder(
    table: pd.DataFrame,
    train_subjects: Sequence[str],
    val_subjects: Sequence[str],
    settings: FeatureSettings,
    out: Path,
    cache_root: Path,
    root: str,
    fps: float = DEFAULT_FPS,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Train the encoder on ``train_subjects``' frames and write ``out`` (backbone weights) plus
    its record ``out.with_suffix('.json')``; a finished ``out`` is returned untouched."""
    out = Path(out)
    if out.is_file():
        return out
    cfg = settings.pretrain
    if cfg is None:
        raise ValueError("settings.pretrain is not set")
    if cfg.steps < 1 or cfg.batch_size < 2 or not 0 <= cfg.expression_fraction <= 1:
        raise UserError(f"data.features.pretrain: need steps >= 1, batch_size >= 2 and 0 <= expression_fraction "
                        f"<= 1 (got {asdict(cfg)})")
    from tqdm import tqdm

    train = _load_videos(table, train_subjects, settings, cache_root, fps, progress)
    val = _load_videos(table, val_subjects, settings, cache_root, fps, progress)
    pools = _sampling_pools(train)
    if len(pools[0]) == 0:
        raise UserError(f"no expression frames in the training subjects {list(train_subjects)}: "
                        f"nothing to pretrain the frame encoder on")

    torch.manual_seed(settings.seed)
    model = ExpressionFrameModel(settings).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    snapshot = out.with_name(out.name + ".partial")
    step, seconds = 0, 0.0
    if snapshot.is_file():
        state = torch.load(snapshot, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        generator.set_state(state["generator"])
        rng.bit_generator.state = state["rng"]
        step, seconds = state["step"], state["seconds"]

    model.train()
    start = time.perf_counter() - seconds
    bar = tqdm(total=cfg.steps, initial=step, desc="frame encoder pretraining", unit="step",
               disable=not progress_wanted(progress))
    while step < cfg.steps:
        crops, targets, known = _batch(train, pools, cfg, rng)
        x = model.encoder.preprocess(augment(frames_to_rgb(crops).to(device), cfg.shift, generator))
        loss = _loss(model(x), targets.to(device), known.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if step % _SAVE_EVERY == 0 and step < cfg.steps:
            with atomic_path(snapshot, suffix=".pt") as tmp:
                torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                            "generator": generator.get_state(), "rng": rng.bit_generator.state, "step": step,
                            "seconds": time.perf_counter() - start}, tmp)
    bar.close()
    seconds = time.perf_counter() - start
    model.eval()
    record = {
        "backbone": settings.backbone, "dataset_root": str(Path(root).resolve()),
        "train_subjects": sorted(train_subjects), "val_subjects": sorted(val_subjects),
        "pretrain": asdict(cfg), "train_seconds": round(seconds, 1),
        "validation": _validate(model, val, cfg.val_stride) if val else {},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    # The record first: a published encoder always has its record next to it.
    atomic_write_json(out.with_suffix(SIDECAR_SUFFIX), record)
    with atomic_path(out, suffix=".pth") as tmp:
        torch.save(model.encoder.model.state_dict(), tmp)
    snapshot.unlink(missing_ok=True)
    if progress:
        print(f"frame encoder pretrained in {seconds / 60:.1f} min -> {out} (validation: {record['validation']})",
              flush=True)
    return out


def _load_videos(table: pd.DataFrame, subjects: Sequence[str], settings: FeatureSettings, cache_root: Path, fps: float,
                 progress: bool) -> List[_Video]:
    """Face crops (cached, the same crops the features are made from) and targets per video."""
    from tqdm import tqdm

    contract = FeatureContract(settings, model_fps=fps)
    crops_cache = ArrayCache(cache_root, contract.crops_key())
    rows = table[table["subject"].isin(list(subjects))]
    groups = list(rows.groupby(["subject", "video"], sort=True))
    videos = []
    shown = progress_wanted(progress) and bool(groups)
    for (subject, video), vrows in tqdm(groups, desc="face crops", unit="video", disable=not shown):
        vid = video_id(subject, video)
        crops, _ = cache_face_crops(vrows["source"].iloc[0], crops_cache, vid, contract.face_pipeline(),
                                    source_fps=float(vrows["fps"].iloc[0]) or fps, model_fps=fps)
        frame_numbers = annotated_frame_numbers(crops_cache.load_meta(vid), int(vrows["first_frame"].iloc[0]))
        targets, known = frame_targets(vrows, frame_numbers[: len(crops)])
        videos.append(_Video(vid, crops, targets, known))
    return videos


def _sampling_pools(videos: List[_Video]) -> Tuple[np.ndarray, np.ndarray]:
    """(video, row) pairs of expression frames (intensity > 0.3) and of all frames."""
    expr, every = [], []
    for i, v in enumerate(videos):
        rows = np.arange(len(v.crops))
        pairs = np.stack([np.full(len(rows), i), rows], 1)
        expr.append(pairs[v.targets[:, 0] > 0.3])
        every.append(pairs)
    return np.concatenate(expr), np.concatenate(every)


def _batch(videos: List[_Video], pools, cfg: EncoderPretraining, rng: np.random.Generator):
    n_expr = int(round(cfg.batch_size * cfg.expression_fraction))
    picks = np.concatenate([pools[0][rng.integers(len(pools[0]), size=n_expr)],
                            pools[1][rng.integers(len(pools[1]), size=cfg.batch_size - n_expr)]])
    picks = picks[np.lexsort((picks[:, 1], picks[:, 0]))]  # sequential reads from each memmap
    crops = np.stack([videos[v].crops[r] for v, r in picks])
    targets = torch.from_numpy(np.stack([videos[v].targets[r] for v, r in picks]))
    known = torch.from_numpy(np.array([videos[v].known[r] for v, r in picks]))
    return crops, targets, known


@torch.no_grad()
def _validate(model: ExpressionFrameModel, videos: List[_Video], stride: int) -> Dict[str, float]:
    """How well the encoder reads expressions on subjects it never trained on: correlation of the
    predicted and annotated intensity, and emotion accuracy on frames near the apex."""
    pred, true, known = [], [], []
    for v in videos:
        rows = np.arange(0, len(v.crops), max(1, stride))
        for i in range(0, len(rows), 256):
            chunk = rows[i:i + 256]
            pred.append(torch.sigmoid(model(model.encoder.preprocess(np.asarray(v.crops[chunk])))).cpu().numpy())
        true.append(v.targets[rows])
        known.append(v.known[rows])
    p, t, k = np.concatenate(pred), np.concatenate(true), np.concatenate(known)
    out: Dict[str, float] = {}
    if t[:, 0].std() > 0 and p[:, 0].std() > 0:
        out["intensity_correlation"] = round(float(np.corrcoef(p[:, 0], t[:, 0])[0, 1]), 4)
    apex = (t[:, 0] > 0.5) & k & (t[:, 1:].max(1) > 0)
    if apex.any():
        out["emotion_accuracy_near_apex"] = round(float((p[apex, 1:].argmax(1) == t[apex, 1:].argmax(1)).mean()), 4)
    return out
