"""FEDN training end to end on a tiny synthetic dataset: features, LightningCLI, LOSO, DDP."""
import json
import os
import subprocess
import sys

import pytest
import yaml

from visionattn.cli import main
from visionattn.evaluation import read_intervals_csv

@pytest.fixture(scope="module")
def tiny(tmp_path_factory, synth_dataset, tiny_recipe):
    root = tmp_path_factory.mktemp("fedn")
    cfg = tiny_recipe(synth_dataset(subjects=3, seconds=10, seed=2), root, trainer={
        "max_epochs": 2, "log_every_n_steps": 1,
        "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                       "init_args": {"monitor": "val/f1", "mode": "max", "save_last": True}}],
        "logger": [{"class_path": f"lightning.pytorch.loggers.{name}", "init_args": {"save_dir": str(root / "run")}}
                   for name in ("CSVLogger", "TensorBoardLogger")]})
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return root, path


@pytest.mark.slow
def test_fit_and_test_write_megc_predictions(tiny):
    root, config = tiny
    assert main(["train", "fit", "--config", str(config), "--data.test_subjects=[s19]"]) == 0
    ckpts = list((root / "run").rglob("last.ckpt"))
    assert ckpts, "no checkpoint written"
    assert main(["train", "test", "--config", str(config), "--data.test_subjects=[s19]",
                 f"--ckpt_path={ckpts[0]}", f"--model.predictions_dir={root / 'pred'}"]) == 0
    preds = read_intervals_csv(root / "pred" / "predictions_test_all_scores.csv")
    assert all(p.subject == "s19" for p in preds)
    assert all(1 <= p.onset <= p.offset <= 300 for p in preds)
    metrics = list((root / "run").rglob("metrics.csv"))
    assert metrics and "val/f1" in metrics[0].read_text()
    assert list((root / "run").rglob("events.out.tfevents*"))  # TensorBoard logs too


@pytest.mark.slow
def test_loso_pools_held_out_predictions_and_resumes(tiny, capsys):
    root, config = tiny
    out = root / "loso"
    assert main(["loso", "--config", str(config), "--out", str(out), "--", "--trainer.max_epochs=1"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["spotting"]) == {"micro", "macro", "overall"}
    pooled = read_intervals_csv(out / "predictions_pooled.csv")
    folds = sorted(p.name for p in out.glob("fold_*"))
    assert folds == ["fold_00_s15", "fold_01_s16", "fold_02_s19"]
    for fold in folds:  # each fold predicts only its held-out subject
        subject = fold.split("_")[2]
        assert {p.subject for p in read_intervals_csv(out / fold / "predictions_test.csv")} <= {subject}
        assert (out / fold / "checkpoints" / "last.ckpt").is_file()
    gt = read_intervals_csv(out / "ground_truth.csv")
    assert {g.subject for g in gt} == {"s15", "s16", "s19"}
    assert len(pooled) == sum(len(read_intervals_csv(out / f / "predictions_test.csv")) for f in folds)
    capsys.readouterr()
    assert main(["loso", "--config", str(config), "--out", str(out), "--", "--trainer.max_epochs=1"]) == 0
    assert capsys.readouterr().out.count("done, skipped") == 3


@pytest.mark.slow
def test_same_config_runs_ddp_on_two_cpu_processes(tiny):
    root, config = tiny
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    run = subprocess.run(
        [sys.executable, "-m", "visionattn.cli", "train", "fit", "--config", str(config), "--data.test_subjects=[s19]",
         "--trainer.devices=2", "--trainer.strategy=ddp", f"--trainer.default_root_dir={root / 'ddp'}",
         "--trainer.max_epochs=1", "--trainer.logger=false"],
        capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert list((root / "ddp").rglob("last.ckpt"))


def _hit_everything(micro: int, macro: int, micro_score: float, macro_score: float):
    """Ground truth of ``micro`` micro- and ``macro`` macro-expressions in one video, and a right
    detection of each scored by its type."""
    from visionattn.evaluation import Interval

    truths = [Interval("s1", "v", 10 * i, 10 * i + 5, "micro", "positive") for i in range(micro)]
    truths += [Interval("s1", "v", 100 + 50 * i, 100 + 50 * i + 30, "macro", "negative") for i in range(macro)]
    preds = [Interval(t.subject, t.video, t.onset, t.offset, t.type, t.emotion,
                      micro_score if t.type == "micro" else macro_score) for t in truths]
    return truths, preds


def test_thresholds_per_type_reach_what_one_shared_threshold_cannot():
    from visionattn.evaluation import Interval
    from visionattn.training.module import choose_thresholds

    # micro detections are right but score low (0.2); macro ones score high (0.8); false alarms of
    # both types score 0.5 and 0.1
    truths, preds = _hit_everything(4, 4, micro_score=0.2, macro_score=0.8)
    preds += [Interval("s1", "v", 500 + 40 * i, 520 + 40 * i, "macro", "others", 0.5) for i in range(3)]
    preds += [Interval("s1", "v", 900 + 20 * i, 905 + 20 * i, "micro", "others", 0.1) for i in range(3)]
    micro, macro = choose_thresholds(truths, preds, ("micro", "macro"), candidates=(0.05, 0.15, 0.3, 0.6))
    # keep every micro hit and drop its false alarms (0.15); drop the macro false alarms (0.6):
    # F1 = 1, which no single shared threshold reaches
    assert (micro, macro) == (0.15, 0.6)


def test_thresholds_take_the_middle_of_an_equally_good_range():
    from visionattn.evaluation import Interval
    from visionattn.training.module import choose_thresholds

    # micro: hits at 0.6, a false alarm at 0.1 -> every threshold in (0.1, 0.6] is equally good;
    # macro: hits at 0.9, nothing else -> every threshold up to 0.9 is
    truths, preds = _hit_everything(3, 3, micro_score=0.6, macro_score=0.9)
    preds.append(Interval("s1", "v", 500, 505, "micro", "others", 0.1))
    candidates = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    # best micro range 0.2..0.6 -> its middle 0.4; best macro range 0.05..0.9 -> its middle 0.45 lies
    # between 0.4 and 0.5, and a tie goes to the lower threshold (hand-computed)
    assert choose_thresholds(truths, preds, ("micro", "macro"), candidates=candidates) == (0.4, 0.4)


def test_thresholds_serve_each_types_own_f1_not_the_pooled_f1():
    from visionattn.evaluation import Interval
    from visionattn.training.module import choose_thresholds

    # ten macro hits at 0.9 and nothing else; two micro hits at 0.3 and three micro false alarms
    # at 0.5
    truths, preds = _hit_everything(2, 10, micro_score=0.3, macro_score=0.9)
    preds += [Interval("s1", "v", 900 + 20 * i, 905 + 20 * i, "micro", "others", 0.5) for i in range(3)]
    # micro F1 by threshold (hand-computed): 0.2 -> tp 2, fp 3, fn 0: 2*2/(2*2+3) = 0.571;
    # 0.4 -> tp 0, fp 3: 0; 0.6 -> tp 0: 0. The pooled F1 would rather drop the micros:
    # 0.2 -> 2*12/(2*12+3) = 0.889 < 0.6 -> 2*10/(2*10+2) = 0.909.
    # macro F1 is 1 at every threshold -> the middle, 0.4
    assert choose_thresholds(truths, preds, ("micro", "macro"), candidates=(0.2, 0.4, 0.6)) == (0.2, 0.4)


def _module_for(feature_dim: int, **kwargs):
    """A SpottingModule built as a trainer would build it, for features of ``feature_dim``."""
    from types import SimpleNamespace

    from visionattn.models.fedn.config import FEDNConfig
    from visionattn.training.module import SpottingModule

    config = FEDNConfig(embed_dim=16, num_heads=2, num_levels=3, regression_ranges=((0, 4), (4, 8), (8, 1e4)))
    module = SpottingModule(config, **kwargs)
    module._trainer = SimpleNamespace(datamodule=SimpleNamespace(feature_dim=feature_dim))
    module.configure_model()
    return module


def test_weight_average_follows_the_ema_recursion():
    import torch

    decay = 0.9
    module = _module_for(8, ema_decay=decay)
    assert module.evaluated is module.ema.module
    assert not any(p.requires_grad for p in module.ema.parameters())
    weight = module.model.embed.conv.weight
    values = [torch.full_like(weight, v) for v in (1.0, 3.0, -2.0, 0.5)]
    expected = None
    for v in values:  # e_1 = p_1, e_t = decay e_(t-1) + (1 - decay) p_t
        with torch.no_grad():
            weight.copy_(v)
        module.on_train_batch_end(None, None, 0)
        expected = v if expected is None else decay * expected + (1 - decay) * v
    averaged = module.ema.module.embed.conv.weight
    assert torch.allclose(averaged, expected)
    assert not torch.allclose(averaged, weight)


def test_without_ema_the_trained_weights_are_evaluated():
    module = _module_for(8)
    assert module.ema is None and module.evaluated is module.model


@pytest.mark.parametrize("decay", [0.0, 1.0, 1.5])
def test_ema_decay_outside_0_1_names_the_key(decay):
    from visionattn.training.module import SpottingModule
    from visionattn.utils import UserError

    with pytest.raises(UserError, match="model.ema_decay"):
        SpottingModule(ema_decay=decay)


def test_ema_run_tests_and_ships_the_averaged_weights(tiny):
    import torch

    from visionattn.inference.record import RECORD_KEY

    root, config = tiny
    run = root / "ema"
    assert main(["train", "fit", "--config", str(config), "--data.test_subjects=[s19]", "--model.ema_decay=0.5",
                 f"--trainer.default_root_dir={run}", "--trainer.logger=false"]) == 0
    ckpt = next(run.rglob("last.ckpt"))
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    averaged = {k[len("ema.module."):]: v for k, v in state["state_dict"].items() if k.startswith("ema.module.")}
    trained = {k[len("model."):]: v for k, v in state["state_dict"].items() if k.startswith("model.")}
    shipped = state[RECORD_KEY]["state_dict"]
    assert averaged.keys() == trained.keys() == shipped.keys()
    assert all(torch.equal(shipped[k], averaged[k]) for k in averaged)
    assert any(not torch.equal(averaged[k], trained[k]) for k in averaged if averaged[k].is_floating_point())
    assert main(["train", "test", "--config", str(config), "--data.test_subjects=[s19]", "--model.ema_decay=0.5",
                 f"--ckpt_path={ckpt}", f"--model.predictions_dir={run / 'pred'}", f"--trainer.default_root_dir={run}",
                 "--trainer.logger=false"]) == 0
    assert (run / "pred" / "predictions_test.csv").is_file()



def test_thresholds_smoothing_prefers_a_broad_good_range_to_a_one_step_peak():
    from visionattn.evaluation import Interval
    from visionattn.training.module import choose_thresholds

    # six micro truths, hits scoring 0.18 (one) and 0.38 (five); false alarms at 0.12 (three) and
    # 0.22 (one). F1 = 2 tp / (6 + tp + fp) by threshold (hand-computed):
    #   0.10: tp 6 fp 4 -> 0.750   0.15: tp 6 fp 1 -> 0.923   0.20: tp 5 fp 1 -> 0.833
    #   0.25, 0.30, 0.35: tp 5 fp 0 -> 0.909                  0.40: 0
    # Smoothed with a Gaussian of sd 0.05 (weights 1, 0.607, 0.135, 0.011, 3e-4 at 0, 0.05, ...
    # 0.20 apart, normalised per row): 0.15 -> 0.855, 0.20 -> 0.873, 0.25 -> 0.887, 0.30 -> 0.856
    truths = [Interval("s1", "v", 10 * i, 10 * i + 5, "micro", "positive") for i in range(6)]
    preds = [Interval(t.subject, t.video, t.onset, t.offset, t.type, t.emotion, s)
             for t, s in zip(truths, (0.18, 0.38, 0.38, 0.38, 0.38, 0.38))]
    preds += [Interval("s1", "v", 500 + 10 * i, 505 + 10 * i, "micro", "others", s)
              for i, s in enumerate((0.12, 0.12, 0.12, 0.22))]
    candidates = (0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40)
    assert choose_thresholds(truths, preds, ("micro",), candidates=candidates) == (0.25,)
    # without smoothing, the one-step peak
    assert choose_thresholds(truths, preds, ("micro",), candidates=candidates, smoothing=1e-3) == (0.15,)
