"""LightningModule: FEDN's temporal part trained on cached per-frame features.

Validation scores the validation subjects (training subjects set aside) with the MEGC
metrics and chooses the score threshold that maximises overall spotting F1 there; that
threshold is saved with the checkpoint and applied, unchanged, to the test subjects. The
test subject never influences the epoch or the threshold.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional

import lightning as L
import numpy as np
import torch

from ..evaluation import Interval, evaluate, write_intervals_csv
from ..models.fedn.config import FEDNConfig
from ..models.fedn.model import FEDN

THRESHOLDS = tuple(np.round(np.arange(0.05, 0.95, 0.05), 2))


class SpottingModule(L.LightningModule):
    """Joint spotting and recognition with FEDN on precomputed features.

    Args:
        fedn: the model's configuration (``backbone`` is ignored: features come cached).
        lr, weight_decay, warmup_epochs: AdamW with linear warm-up then cosine decay, as
            ActionFormer.
        predictions_dir: where ``test`` writes the held-out predictions as MEGC CSV
            (default: the logger's folder).
    """

    def __init__(
        self,
        fedn: FEDNConfig = FEDNConfig(backbone=None),
        lr: float = 5e-4,
        weight_decay: float = 0.05,
        warmup_epochs: int = 2,
        predictions_dir: Optional[str] = None,
    ):
        super().__init__()
        # Where to write is a property of this run, not of the trained model: kept out of the
        # checkpoint so `test --ckpt_path` honours the value given now.
        self.save_hyperparameters(ignore=["predictions_dir"])
        fedn.backbone = None
        self.model = FEDN(fedn)
        self.lr, self.weight_decay, self.warmup_epochs = lr, weight_decay, warmup_epochs
        self.predictions_dir = predictions_dir
        self.register_buffer("threshold", torch.tensor(0.3))
        self._outputs: List[Interval] = []
        self._truths: List[Interval] = []

    # ---------------------------------------------------------------- training
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses = self.model.loss(self.model.temporal(batch["features"], batch["mask"]), batch["gt"])
        parts = {f"train/{k}": v.float() for k, v in losses.items() if k != "loss"}
        self.log_dict(parts, batch_size=len(batch["gt"]))
        self.log("train/loss", losses["loss"], prog_bar=True, batch_size=len(batch["gt"]))
        return losses["loss"]

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warm = min(total - 1, self.warmup_epochs * max(1, total // max(1, self.trainer.max_epochs or 1)))

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / (warm + 1)
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ---------------------------------------------------------------- evaluation
    def _collect(self, batch: dict) -> None:
        dm = self.trainer.datamodule
        preds = self.model.predict(batch["features"], batch["mask"])
        names_t, names_e = self.model.config.type_names, self.model.config.emotion_names
        for meta, pred, gt in zip(batch["meta"], preds, batch["gt"]):
            frames = _frame_numbers(dm, meta)
            for on, off, t, e, s in zip(pred["onset"].tolist(), pred["offset"].tolist(), pred["type"].tolist(),
                                        pred["emotion"].tolist(), pred["score"].tolist()):
                self._outputs.append(Interval(meta["subject"], meta["video"], int(frames[on]), int(frames[off]),
                                              names_t[t], names_e[e], float(s)))
            for (on, off), t, e in zip(gt["segments"].long().tolist(), gt["types"].tolist(), gt["emotions"].tolist()):
                self._truths.append(Interval(meta["subject"], meta["video"], int(frames[on]), int(frames[off]),
                                             names_t[t], names_e[e] if e >= 0 else ""))

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._collect(batch)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._collect(batch)

    def _gathered(self):
        preds, truths = self._outputs, self._truths
        self._outputs, self._truths = [], []
        if self.trainer.world_size > 1:  # every rank scored some videos; samplers may repeat some
            gathered: List = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(gathered, (preds, truths))
            preds = list(dict.fromkeys(p for g in gathered for p in g[0]))
            truths = list(dict.fromkeys(t for g in gathered for t in g[1]))
        return preds, truths

    def on_validation_epoch_end(self) -> None:
        preds, truths = self._gathered()
        best_t, best = float(self.threshold), None
        for t in THRESHOLDS:
            r = evaluate(truths, [p for p in preds if p.score >= t])
            if best is None or r["spotting"]["overall"]["f1"] > best["spotting"]["overall"]["f1"]:
                best_t, best = float(t), r
        self.threshold.fill_(best_t)
        self._log_report("val", best)
        self.log("val/threshold", best_t)

    def on_test_epoch_end(self) -> None:
        preds, truths = self._gathered()
        kept = [p for p in preds if p.score >= float(self.threshold)]
        self._log_report("test", evaluate(truths, kept))
        if self.trainer.is_global_zero:
            out = Path(self.predictions_dir or self.trainer.log_dir or ".")
            write_intervals_csv(out / "predictions_test.csv", kept)
            write_intervals_csv(out / "predictions_test_all_scores.csv", preds)

    def _log_report(self, stage: str, r: Dict) -> None:
        sp = r["spotting"]
        self.log_dict({
            f"{stage}/f1": sp["overall"]["f1"], f"{stage}/f1_micro": sp["micro"]["f1"],
            f"{stage}/f1_macro": sp["macro"]["f1"], f"{stage}/strs": r["strs"],
            f"{stage}/map": r["map"]["average"],
        }, prog_bar=(stage == "val"))  # identical on every rank: computed from gathered results


def _frame_numbers(dm, meta: dict) -> np.ndarray:
    rec = dm.record(meta["subject"], meta["video"])
    return rec.frame_numbers[meta["start"]:]
