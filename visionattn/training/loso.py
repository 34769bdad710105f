"""``visionattn loso``: train every leave-one-subject-out fold and score the pooled predictions.

    visionattn loso --config configs/fedn/casme2.yaml --out outputs/loso/casme2

For each subject in turn, the fold trains on the other subjects with the same YAML that
``visionattn train`` reads (``--data.fold i`` is the only change), selects the epoch and the
score threshold on validation subjects drawn from the training subjects, and predicts the
held-out subject. The held-out predictions of all folds are pooled into one MEGC CSV and
scored as ``visionattn evaluate`` scores it, so the figures are comparable with MEGC results
and never peek at a test subject.

Resumable: a finished fold leaves ``fold_XX/predictions_test.csv`` and is skipped; an
interrupted fold resumes from its ``last.ckpt`` (same epoch, same optimizer state); see
:mod:`.runs`.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

from ..evaluation import evaluate, read_intervals_csv, write_intervals_csv
from ..evaluation.report import format_report
from ..utils import UserError, atomic_write_json
from .runs import fit_and_test


def _fold_overrides(fold: int) -> List[str]:
    return [f"--data.fold={fold}", "--data.test_subjects=null"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", action="append", required=True,
                        help="the same YAML(s) `visionattn train` takes (repeatable)")
    parser.add_argument("--out", required=True, help="folder for the folds and the pooled result")
    parser.add_argument("--folds", default=None, help="comma-separated fold indices (default: all)")
    parser.add_argument("overrides", nargs="*", help="extra LightningCLI overrides, e.g. --trainer.max_epochs=5 "
                        "(put them after `--`)")


def run(args: argparse.Namespace) -> dict:
    from .cli import fedn_cli
    from ..data.datasets import load_table

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # The subjects and the ground truth come from the data section of the config itself.
    dm = fedn_cli(list(args.overrides), run=False, configs=args.config).datamodule
    table = load_table(dm.dataset, dm.root, dm.missing_offset)
    subjects = sorted(table["subject"].unique())
    folds = range(len(subjects)) if args.folds is None else [int(f) for f in args.folds.split(",")]
    for fold in folds:
        if not 0 <= fold < len(subjects):
            raise UserError(f"--folds: {fold} is not a fold (0..{len(subjects) - 1})")
        fold_dir = out / f"fold_{fold:02d}_{subjects[fold]}"
        if (fold_dir / "predictions_test.csv").is_file():
            print(f"fold {fold} ({subjects[fold]}): done, skipped")
            continue
        print(f"fold {fold} ({subjects[fold]}): training", flush=True)
        fit_and_test(args.config, fold_dir, _fold_overrides(fold) + list(args.overrides))
    return pool(out, table, [out / f"fold_{f:02d}_{subjects[f]}" for f in folds])


def pool(out: Path, table, fold_dirs: List[Path]) -> dict:
    """Pool the folds' held-out predictions into one MEGC CSV and score it."""
    from ..evaluation import Interval

    missing = [d for d in fold_dirs if not (d / "predictions_test.csv").is_file()]
    if missing:
        raise UserError(f"folds without predictions: {[str(d) for d in missing]}")
    preds = [p for d in fold_dirs for p in read_intervals_csv(d / "predictions_test.csv")]
    tested = {d.name.split("_", 2)[2] for d in fold_dirs}
    truths = [Interval(r.subject, r.video, int(r.onset), int(r.offset), r.type, r.emotion)
              for r in table.itertuples() if r.subject in tested]
    write_intervals_csv(out / "ground_truth.csv", truths, score=False)
    write_intervals_csv(out / "predictions_pooled.csv", preds)
    report = evaluate(truths, preds)
    atomic_write_json(out / "report.json", report)
    print(format_report(report))
    return report
