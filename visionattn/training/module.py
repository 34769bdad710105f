"""LightningModule: FEDN's temporal part trained on cached per-frame features.

Validation scores the validation subjects (training subjects set aside) with the MEGC
metrics and chooses one score threshold per expression type, each the best for that type's
spotting F1 there (micro-expressions score lower than macro ones, so one shared threshold
would trade the micros away); the thresholds are saved with the checkpoint and
applied, unchanged, to the test subjects. The test subject never influences the epoch or the
thresholds.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import lightning as L
import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..evaluation import Interval, evaluate, write_intervals_csv
from ..evaluation.spotting import spotting_scores
from ..inference.detector import within_face_spans
from ..inference.record import RECORD_KEY, DetectorRecord
from ..spotting.stitching import StepDetection
from ..models.fedn.config import DEFAULT_THRESHOLD, FEDNConfig
from ..models.fedn.model import FEDN
from ..utils import UserError

THRESHOLDS = tuple(np.round(np.arange(0.05, 0.95, 0.05), 2))


def choose_thresholds(truths: Sequence[Interval], preds: Sequence[Interval], kinds: Sequence[str],
                      candidates: Sequence[float] = THRESHOLDS, smoothing: float = 0.05) -> Tuple[float, ...]:
    """One score threshold per expression type: each the best for that type's own spotting F1.

    Matching is per type, so each type's counts depend on its own threshold only and each type
    is tuned alone. Tuning for the pooled overall F1 instead lets the many macro-expressions
    outvote the few micro ones: a micro threshold that keeps two hits and three false alarms
    lowers the pooled F1 of ten macro hits, so the micros would be dropped, and the micro F1 that
    MEGC reports with the overall one would be zero.

    A few validation subjects hold a handful of micro-expressions, so the F1 curve over the
    thresholds is a staircase whose single highest step is often one expression's luck. Each
    type's curve is therefore smoothed with a Gaussian kernel of ``smoothing`` (score units) over
    the candidates before its maximum is taken: a threshold whose neighbours are good too wins
    over an isolated peak. A range of equally good thresholds (no validation score falls between
    them) gives way to the one nearest its middle (a tie goes to the lower threshold), which keeps
    the largest margin on both sides for unseen subjects.
    """
    grid = np.asarray(candidates, dtype=np.float64)
    weights = np.exp(-0.5 * ((grid[:, None] - grid[None, :]) / smoothing) ** 2)
    weights /= weights.sum(axis=1, keepdims=True)
    chosen = []
    for kind in kinds:
        f1 = np.array([spotting_scores(truths, [p for p in preds if p.type == kind and p.score >= t])[kind]["f1"]
                       for t in candidates])
        smoothed = weights @ f1
        equally_good = [t for t, v in zip(candidates, smoothed) if v >= smoothed.max() - 1e-9]
        middle = float(np.median(equally_good))
        chosen.append(min(equally_good, key=lambda t: (abs(t - middle), t)))
    return tuple(float(t) for t in chosen)


class SpottingModule(L.LightningModule):
    """Joint spotting and recognition with FEDN on precomputed features.

    Args:
        fedn: the model's configuration; ``feature_dim`` comes from the data (a value given is
            checked against it). The FEDN network is built in :meth:`configure_model`, once the
            data is set up.
        lr, weight_decay, warmup_epochs: AdamW with linear warm-up then cosine decay, as
            ActionFormer.
        ema_decay: validate, test and ship an exponential moving average of the weights, updated
            after every training batch with this decay (ActionFormer evaluates such an average);
            ``None``: the weights as trained.
        predictions_dir: where ``test`` writes the held-out predictions as MEGC CSV
            (default: the logger's folder).
    """

    def __init__(
        self,
        fedn: FEDNConfig = FEDNConfig(),
        lr: float = 5e-4,
        weight_decay: float = 0.05,
        warmup_epochs: int = 2,
        ema_decay: Optional[float] = None,
        predictions_dir: Optional[str] = None,
    ):
        super().__init__()
        # Where to write is a property of this run, not of the trained model: kept out of the
        # checkpoint so `test --ckpt_path` honours the value given now.
        self.save_hyperparameters(ignore=["predictions_dir"])
        self.config = fedn
        self.model: Optional[FEDN] = None
        if ema_decay is not None and not 0 < ema_decay < 1:
            raise UserError(f"model.ema_decay {ema_decay}: must be in (0, 1), or null for no average")
        self.ema_decay = ema_decay
        self.ema: Optional[AveragedModel] = None
        self.lr, self.weight_decay, self.warmup_epochs = lr, weight_decay, warmup_epochs
        self.predictions_dir = predictions_dir
        self.register_buffer("thresholds", torch.full((len(fedn.type_names),), DEFAULT_THRESHOLD))
        self._outputs: List[Interval] = []
        self._truths: List[Interval] = []

    def configure_model(self) -> None:
        """Build FEDN for the features the datamodule serves (called after its ``setup``)."""
        if self.model is not None:
            return
        dim = self.trainer.datamodule.feature_dim
        if self.config.feature_dim is None:
            self.config = replace(self.config, feature_dim=dim)
        elif self.config.feature_dim != dim:
            raise UserError(f"model.fedn.feature_dim {self.config.feature_dim}: the features have {dim} channels "
                            f"(data.features makes them); remove the key, it is taken from the data")
        # Nothing draws between the run's seed and here (data preparation leaves the random
        # streams as it found them), so the initial weights depend on the seed alone, as if FEDN
        # were built in __init__.
        self.model = FEDN(self.config)
        if self.ema_decay is not None:
            # Parameters only: FEDN's one buffer is the loss normaliser, which predictions never read.
            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(self.ema_decay), use_buffers=False)
            self.ema.requires_grad_(False)

    @property
    def evaluated(self) -> FEDN:
        """The FEDN that validation, test and ``visionattn detect`` use: the weight average, if any."""
        return self.model if self.ema is None else self.ema.module

    def detector_record(self) -> DetectorRecord:
        """What this model is for ``visionattn detect``; the datamodule tells how its features are made."""
        dm = self.trainer.datamodule
        return DetectorRecord(model=self.config, features=dm.frame_feature_settings, window=dm.window, fps=dm.fps,
                              thresholds=self.thresholds_by_type(),
                              state_dict=self.evaluated.state_dict())

    def thresholds_by_type(self) -> Dict[str, float]:
        """The score threshold of each expression type, by type name."""
        return dict(zip(self.config.type_names, self.thresholds.tolist()))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[RECORD_KEY] = self.detector_record().to_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # checkpoints written before the buffer was named ``thresholds``
        state = checkpoint.get("state_dict", {})
        if "threshold" in state and "thresholds" not in state:
            state["thresholds"] = state.pop("threshold")

    # ---------------------------------------------------------------- training
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses = self.model.loss(self.model.temporal(batch["features"], batch["mask"]), batch["gt"])
        parts = {f"train/{k}": v.float() for k, v in losses.items() if k != "loss"}
        self.log_dict(parts, batch_size=len(batch["gt"]))
        self.log("train/loss", losses["loss"], prog_bar=True, batch_size=len(batch["gt"]))
        return losses["loss"]

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
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
        preds = self.evaluated.predict(batch["features"], batch["mask"])
        names_t, names_e = self.model.config.type_names, self.model.config.emotion_names
        for meta, pred, gt in zip(batch["meta"], preds, batch["gt"]):
            frames = _frame_numbers(dm, meta)
            found = [StepDetection(on, off, t, e, s) for on, off, t, e, s in zip(
                pred["onset"].tolist(), pred["offset"].tolist(), pred["type"].tolist(), pred["emotion"].tolist(),
                pred["score"].tolist())]
            spans = dm.record(meta["subject"], meta["video"]).face_spans
            if spans is not None and meta["start"] == 0:  # as `visionattn detect` reports them
                found = within_face_spans(found, spans)
            for d in found:
                self._outputs.append(Interval(meta["subject"], meta["video"], int(frames[d.onset]),
                                              int(frames[d.offset]), names_t[d.type], names_e[d.emotion],
                                              float(d.score)))
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
        kinds = self.model.config.type_names
        for i, (kind, t) in enumerate(zip(kinds, choose_thresholds(truths, preds, kinds))):
            self.thresholds[i] = t
            self.log(f"val/threshold_{kind}", t)
        self._log_report("val", evaluate(truths, self._kept(preds)))

    def _kept(self, preds: List[Interval]) -> List[Interval]:
        """Predictions at or above their type's threshold."""
        thresholds = self.thresholds_by_type()
        return [p for p in preds if p.score >= thresholds[p.type]]

    def on_test_epoch_end(self) -> None:
        preds, truths = self._gathered()
        kept = self._kept(preds)
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
