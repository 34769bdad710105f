"""The benchmark runs end to end at toy sizes and its naive baseline computes real MCA-S."""
import json

import numpy as np

import pytest

import torch

from visionattn.benchmarks.mca_speed import NaiveMomentAttention, TARGETS
from visionattn.cli import main
from visionattn.layers import MomentChannelAttention


def test_naive_baseline_is_mca_s():
    naive = NaiveMomentAttention(32)
    fast = MomentChannelAttention(32, "S")
    fast.load_state_dict({"cmc.weight": naive.cmc.weight, "cmc.bias": naive.cmc.bias})
    x = torch.randn(2, 32, 9, 9).exp()
    torch.testing.assert_close(naive(x), fast(x), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_benchmark_cli_writes_table_and_json(tmp_path, capsys):
    rc = main(["benchmark", "--out", str(tmp_path), "--batch-sizes", "1", "2", "--img-size", "64",
               "--repeats", "1", "--train-batch-size", "2", "--train-img-size", "64", "--train-repeats", "1",
               "--no-cuda"])
    assert rc == 0
    result = json.loads((tmp_path / "mca_benchmark.json").read_text())
    models = [r["model"] for r in result["rows"]]
    assert models == ["resnet50", "resnet50+SE", "resnet50+ECA", "resnet50+MCA-E", "resnet50+MCA-S",
                      "resnet50+MCA-S (not in place)", "resnet50+MCA-S (naive)"]
    for row in result["rows"]:
        assert row["params"] > 25_000_000 and row["gflops"] > 0
        assert set(row["cpu_latency_ratio"]) == {"1", "2"}  # JSON keys
        assert row["cpu_train_peak_mib"] >= 0 and row["saved_activations_mib"] > 0
    assert result["rows"][0]["cpu_latency_ratio"]["1"] == 1.0
    assert len(result["targets"]) == 2 * len(TARGETS)
    ratio_to_plain = {r["model"]: r["cpu_latency_ratio"] for r in result["rows"]}
    for t in result["targets"]:  # floor: what an attention block costing nothing would score
        denominator = t["ratio"].split(" / ")[1]
        assert t["floor"] == pytest.approx(1 / ratio_to_plain[denominator][str(t["batch_size"])], rel=1e-3)
    # MCA adds m*k+1 parameters per block to the plain ResNet-50 (16 blocks)
    params = {r["model"]: r["params"] for r in result["rows"]}
    assert params["resnet50+MCA-S"] - params["resnet50"] == 16 * (2 * 3 + 1)
    assert params["resnet50+MCA-E"] - params["resnet50"] == 16 * (2 * 11 + 1)
    table = (tmp_path / "mca_benchmark.md").read_text()
    assert "| resnet50+MCA-S |" in table and "target <= 1.02" in table
    assert "resnet50+MCA-S (naive)" in capsys.readouterr().out


@pytest.mark.slow
def test_fedn_scaling_benchmark_runs_both_attentions(tmp_path):
    rc = main(["benchmark-fedn-scaling", "--out", str(tmp_path), "--lengths", "256", "512", "--repeats", "1",
               "--embed-dim", "32", "--feature-dim", "16"])
    assert rc == 0
    rows = json.loads((tmp_path / "fedn_scaling.json").read_text())["rows"]
    assert [r["frames"] for r in rows] == [256, 512]
    for r in rows:
        for variant in ("window", "full"):
            assert r[variant]["ms"] > 0 and r[variant]["peak_mib"] >= 0
    assert "window attention peak memory" in (tmp_path / "fedn_scaling.md").read_text()


def test_detect_speed_benchmark_times_every_method(tmp_path):
    assert main(["benchmark-detect", "--out", str(tmp_path), "--seconds", "6"]) == 0
    report = json.loads((tmp_path / "detect_speed.json").read_text())
    assert report["frames"] == 180 and report["threads"] == 2 and report["face_size"] == 112
    stages = report["stages_fps"]
    assert set(stages) == {"decode", "face front end", "of which motion stream (optical flow)", "appearance network",
                           "FEDN temporal", "flow spotter", "appearance spotter", "end to end, --method fedn",
                           "end to end, --method flow", "end to end, --method appearance"}
    assert all(v > 0 for v in stages.values())
    # the motion stream runs inside the front end, so it cannot take longer than the front end
    assert stages["of which motion stream (optical flow)"] >= stages["face front end"]
    for method in ("fedn", "flow", "appearance"):
        factor = report["realtime_factor"][method]
        assert factor == pytest.approx(stages[f"end to end, --method {method}"] / 30.0)
        assert report["target_met"][method] == (factor >= 2.0)
    table = (tmp_path / "detect_speed.md").read_text()
    assert "| end to end, --method flow |" in table and "--method fedn:" in table and "target >= 2x" in table
    rerun = report["rethreshold"]  # the second detect re-scored the cached signals: it cannot take longer
    assert 0 < rerun["rerun_s"] < rerun["first_s"] and rerun["ratio"] == pytest.approx(rerun["rerun_s"] / rerun["first_s"])
    assert rerun["met"] == (rerun["ratio"] < 0.1) and "re-thresholding the cached video" in table


# Feature rows of the default features, as visionattn.features.extraction documents them:
# face flag, motion_valid flag, motion (9 regions x (dx, dy, mag), % IOD; region order of
# visionattn.features.motion.REGION_NAMES), appearance logits (FER order: angry, disgust, fear,
# happy, sad, surprise, neutral), appearance embedding (128); stored as float16.
FACE, VALID, MOTION, LOGITS, DIM = 0, 1, slice(2, 29), slice(29, 36), 164
NEUTRAL = 6
FER_OF_MEGC = {"positive": 3, "negative": 0, "surprise": 5}  # happy, angry, surprise
LAG = 6  # round(0.2 s * 30 fps)


def planted_rows(n, events, no_face=10, cut=None, seed=0):
    """Feature rows ``(n, 164)`` of a face whose brows (macro) or mouth corners (micro) move by a
    raised cosine of 4 % IOD over each event's rows ``(first, last, emotion)`` (the appearance
    network's logit of a FER class of that MEGC emotion rises with it; ``others``: none), with ``g(t) = d(t) - d(t - LAG)`` plus noise
    as the motion stream measures it; no face on the first ``no_face`` rows; a shot cut before
    row ``cut`` (the stream is invalid for LAG rows after a new face or a cut)."""
    from visionattn.features.motion import REGION_NAMES

    rng = np.random.default_rng(seed)
    t = np.arange(n)
    d = rng.normal(0.0, 0.05, (n, 9, 2))
    logits = np.zeros((n, 7))
    logits[:, NEUTRAL] = 3.0
    for first, last, emotion in events:
        shape = np.where((t >= first) & (t <= last), 0.5 * (1 - np.cos(2 * np.pi * (t - first) / (last - first))), 0)
        regions = ("right_brow", "left_brow") if last - first > 15 else ("right_mouth_corner", "left_mouth_corner")
        for r in regions:
            d[:, REGION_NAMES.index(r), 1] -= 4.0 * shape
        if emotion in FER_OF_MEGC:
            logits[:, FER_OF_MEGC[emotion]] += 6.0 * shape
    g = d - np.concatenate([d[:1].repeat(LAG, 0), d])[:n] + rng.normal(0.0, 0.05, d.shape)
    motion = np.concatenate([g, np.hypot(g[..., :1], g[..., 1:])], axis=2).reshape(n, 27)
    present = t >= no_face
    valid = t >= no_face + LAG
    if cut is not None:
        valid &= ~((t >= cut) & (t < cut + LAG))
    rows = np.zeros((n, DIM), np.float32)
    rows[:, FACE], rows[:, VALID] = present, valid
    rows[:, MOTION] = np.where(valid[:, None], motion, 0.0)
    rows[:, LOGITS] = np.where(present[:, None], logits, 0.0)
    return rows.astype(np.float16)


def write_cached_features(cache_root, vid, rows, cuts=()):
    """A video's rows where the default features' cache keeps them, with the metadata of a video
    file read at its own 30 fps (rows are frames 0..n-1)."""
    from visionattn.data.cache import ArrayCache
    from visionattn.features.contract import FeatureContract

    cache = ArrayCache(cache_root, FeatureContract().cache_key())
    cache.folder.mkdir(parents=True, exist_ok=True)
    np.save(cache.path(vid), rows)
    cache.write_meta(vid, {"kind": "video", "frame_ranges": [[0, len(rows) - 1]], "faces": {"cuts": list(cuts)}})


def test_fedn_benchmark_flow_row_spots_planted_motion_without_training(tmp_path):
    """`--rows "flow (training-free)"`: the held-out video's cached rows carry the motion of its
    ground-truth expressions (annotation frame f is row f - 1: a video file's annotations count
    from 1); the row trains nothing and finds both of them."""
    import pandas as pd

    from visionattn.benchmarks.fedn_accuracy import make_dataset

    out = tmp_path / "bench"
    # seed 3: the held-out video's expressions are short next to the video (its noise is measured
    # on it: an expression filling half of it would not be judged against its noise)
    make_dataset(out / "synth", subjects=3, videos=1, seconds=8.0, seed=3)
    truth = pd.read_csv(out / "synth" / "ground_truth.csv", dtype={"video": str})
    held = sorted(truth["subject"].unique())[-1]
    n = 240
    for (subject, video), rows in truth.groupby(["subject", "video"]):
        events = [(on - 1, off - 1, emo) for on, off, emo in zip(rows.onset, rows.offset, rows.emotion)]
        planted = planted_rows(n, events if subject == held else [], cut=225)
        write_cached_features(out / "cache", f"{subject}_{video}", planted, cuts=[225])
    assert main(["benchmark-fedn", "--out", str(out), "--subjects", "3", "--videos-per-subject", "1",
                 "--seconds", "8", "--seed", "3", "--test-subjects", "1", "--rows", "flow (training-free)"]) == 0
    report = json.loads((out / "fedn_accuracy.json").read_text())
    [row] = report["rows"]
    assert row["model"] == "flow (training-free)" and row["train_minutes"] == 0
    assert row["f1"] == 1.0
    predictions = pd.read_csv(out / "flow_training_free" / "predictions_test.csv", dtype={"video": str})
    expected = truth[truth.subject == held].sort_values("onset")
    predictions = predictions.sort_values("onset")
    assert list(predictions.subject) == list(expected.subject)
    assert list(predictions.type) == list(expected.type)
    assert list(predictions.emotion) == list(expected.emotion)
    assert "| flow (training-free) |" in (out / "fedn_accuracy.md").read_text()


def test_flow_row_extracts_missing_default_features(tmp_path):
    """Without the FEDN rows' cache, the flow row makes the held-out videos' default features itself."""
    from visionattn.benchmarks.fedn_accuracy import flow_row, make_dataset
    from visionattn.data.cache import ArrayCache
    from visionattn.features.contract import FeatureContract

    make_dataset(tmp_path / "synth", subjects=1, videos=1, seconds=6.0, seed=0)
    record = flow_row(tmp_path, tmp_path / "synth", tmp_path / "cache", ["s15"])
    assert record["train_seconds"] == 0.0
    cache = ArrayCache(tmp_path / "cache", FeatureContract().cache_key())
    rows = cache.load("s15_0101")
    assert rows.shape == (180, 164) and rows[:, 0].max() == 1.0  # the face was found
    header = (tmp_path / "flow_training_free" / "predictions_test.csv").read_text().splitlines()[0]
    assert header == "subject,video,onset,offset,type,emotion,score"


def test_fedn_benchmark_seeds_parse_and_summarise(tmp_path, monkeypatch):
    """`--seeds`: one run per seed in OUT/seed<N>, then per row the mean, population standard
    deviation and minimum over the seeds (values worked by hand)."""
    import argparse

    import pytest

    from visionattn.benchmarks import fedn_accuracy as fa
    from visionattn.utils import UserError

    assert fa.parse_seeds("21-23,30") == [21, 22, 23, 30]
    for bad in ("", "a-b", "3,3", "5-4"):
        with pytest.raises(UserError, match="--seeds"):
            fa.parse_seeds(bad)

    scores = {21: (0.9, 0.8), 22: (0.8, 0.6)}
    seen = []

    def one_seed(args):
        seen.append((args.seed, args.out))
        f1, micro = scores[args.seed]
        return {"rows": [{"model": "FEDN", "f1": f1, "f1_micro": micro, "f1_macro": 1.0, "strs": 0.5, "map": 0.25,
                          "train_minutes": 1.0}]}

    monkeypatch.setattr(fa, "run", one_seed)
    parser = argparse.ArgumentParser()
    fa.add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path), "--seeds", "21-22", "--rows", "FEDN"])
    fa.run_seeds(args)
    assert seen == [(21, str(tmp_path / "seed21")), (22, str(tmp_path / "seed22"))]
    table = (tmp_path / "fedn_seeds.md").read_text()
    assert "| FEDN | 22 | 0.800 | 0.600 | 1.000 | 0.500 | 0.250 |" in table
    assert "| **FEDN** | mean | 0.850 | 0.700 | 1.000 | 0.500 | 0.250 |" in table
    assert "| **FEDN** | std | 0.050 | 0.100 | 0.000 | 0.000 | 0.000 |" in table
    assert "| **FEDN** | min | 0.800 | 0.600 | 1.000 | 0.500 | 0.250 |" in table
    assert json.loads((tmp_path / "fedn_seeds.json").read_text())["seeds"]["21"][0]["f1"] == 0.9
