"""Losses of FEDN (ActionFormer's recipe plus an emotion term).

* Boundaries: 1D Distance-IoU loss on positive points.
* Expression type: sigmoid focal loss (alpha 0.25, gamma 2) on every valid point.
* Emotion: cross-entropy (or sigmoid focal) on positive points whose interval has an emotion
  label (``emotions`` ``-1`` marks an unlabelled interval, e.g. CAS(ME)^3 macro-expressions).

Each sum is divided by an exponential moving average of the number of positive points per
batch (ActionFormer's loss normaliser), which keeps the loss scale steady across batches with
few or many expressions.
"""
from __future__ import annotations

from typing import Dict, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import FEDNConfig
from .targets import assign_batch, make_points


def diou_loss_1d(pred: Tensor, target: Tensor, eps: float = 1e-8) -> Tensor:
    """1D Distance-IoU loss between intervals, ``(N, 2), (N, 2) -> (N,)``; rows are ``[start, end]``.

    With ``I = max(0, min(e_p, e_g) - max(s_p, s_g))``, ``U = (e_p - s_p) + (e_g - s_g) - I``,
    the enclosing length ``C = max(e_p, e_g) - min(s_p, s_g)`` and the centre distance
    ``rho = (s_p + e_p) / 2 - (s_g + e_g) / 2``::

        DIoU = I / U - rho**2 / C**2
        loss = 1 - DIoU = 1 - I / U + rho**2 / C**2

    so identical intervals give 0 and disjoint ones more than 1 (the centre term keeps pulling
    them together where IoU has no gradient).
    """
    ps, pe = pred[:, 0], pred[:, 1]
    gs, ge = target[:, 0], target[:, 1]
    inter = (torch.minimum(pe, ge) - torch.maximum(ps, gs)).clamp(min=0)
    union = (pe - ps) + (ge - gs) - inter
    enclosing = torch.maximum(pe, ge) - torch.minimum(ps, gs)
    rho = 0.5 * (ps + pe) - 0.5 * (gs + ge)
    return 1 - inter / union.clamp(min=eps) + rho.square() / enclosing.square().clamp(min=eps)


def offsets_to_intervals(offsets: Tensor) -> Tensor:
    """Distances ``(N, 2)`` ``[to start, to end]`` from a point -> intervals ``[-d_s, d_e]`` around it."""
    return torch.stack([-offsets[:, 0], offsets[:, 1]], dim=1)


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Element-wise focal loss, same shape as ``logits``: ``-alpha_t (1 - p_t)**gamma log(p_t)``.

    ``p_t = p`` where the target is 1 and ``1 - p`` where it is 0; ``alpha_t`` likewise ``alpha``
    or ``1 - alpha`` (``alpha < 0`` disables it).
    """
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss


class FEDNLoss(nn.Module):
    """Assigns targets and computes the losses from :meth:`FEDN.temporal` outputs.

    ``forward(outputs, gt_list)`` returns a dict of scalars: ``type_loss``, ``reg_loss``,
    ``emotion_loss`` (each a sum over points divided by the normaliser), ``loss`` (the weighted
    total to back-propagate) and ``num_positives``. The EMA normaliser (a buffer, saved with the
    model) is only updated in training mode.
    """

    def __init__(self, config: FEDNConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("normalizer", torch.tensor(float(config.loss_norm_init)))

    def forward(
        self, outputs: Mapping[str, Sequence[Tensor]], gt_list: Sequence[Mapping[str, Tensor]]
    ) -> Dict[str, Tensor]:
        cfg = self.config
        type_logits = torch.cat(list(outputs["type_logits"]), dim=1)  # (B, P, num_types)
        emotion_logits = torch.cat(list(outputs["emotion_logits"]), dim=1)  # (B, P, E)
        offsets = torch.cat(list(outputs["offsets"]), dim=1)  # (B, P, 2)
        valid = torch.cat(list(outputs["masks"]), dim=1)  # (B, P)
        if len(gt_list) != type_logits.shape[0]:
            raise ValueError(f"{len(gt_list)} ground truths for a batch of {type_logits.shape[0]}")

        points = make_points(
            [t.shape[1] for t in outputs["type_logits"]], outputs["strides"], cfg.regression_ranges,
            device=type_logits.device,
        )
        targets = assign_batch(points, gt_list, cfg.center_sample_radius, cfg.num_types)
        positive = targets["positive"] & valid
        num_pos = positive.sum()

        if self.training:
            m = cfg.loss_norm_momentum
            self.normalizer.mul_(m).add_((1 - m) * num_pos.clamp(min=1).to(self.normalizer.dtype))
        norm = self.normalizer

        type_target = targets["type"].to(type_logits.dtype)
        type_loss = sigmoid_focal_loss(
            type_logits[valid], type_target[valid], cfg.focal_alpha, cfg.focal_gamma
        ).sum() / norm

        if num_pos > 0:
            reg_loss = diou_loss_1d(
                offsets_to_intervals(offsets[positive]), offsets_to_intervals(targets["offsets"][positive])
            ).sum() / norm
        else:
            # Zero that still depends on the outputs, so backward() works on a batch without expressions.
            reg_loss = offsets.sum() * 0

        # Positive points of intervals without an emotion label (-1) train spotting only.
        labelled = positive & (targets["emotion"] >= 0)
        if labelled.any():
            emo_logits, emo_target = emotion_logits[labelled], targets["emotion"][labelled]
            if cfg.emotion_loss == "ce":
                emotion_loss = F.cross_entropy(emo_logits, emo_target, reduction="sum") / norm
            else:
                one_hot = F.one_hot(emo_target, cfg.num_emotions).to(emo_logits.dtype)
                emotion_loss = sigmoid_focal_loss(emo_logits, one_hot, cfg.focal_alpha, cfg.focal_gamma).sum() / norm
        else:
            emotion_loss = emotion_logits.sum() * 0

        total = (cfg.type_loss_weight * type_loss + cfg.reg_loss_weight * reg_loss
                 + cfg.emotion_loss_weight * emotion_loss)
        return {"type_loss": type_loss, "reg_loss": reg_loss, "emotion_loss": emotion_loss,
                "loss": total, "num_positives": num_pos}
