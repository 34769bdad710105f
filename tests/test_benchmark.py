"""The benchmark runs end to end at toy sizes and its naive baseline computes real MCA-S."""
import json

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


def test_detect_speed_benchmark_times_every_stage(tmp_path):
    assert main(["benchmark-detect", "--out", str(tmp_path), "--seconds", "10", "--threads", "1"]) == 0
    report = json.loads((tmp_path / "detect_speed.json").read_text())
    assert report["frames"] == 300 and report["face_size"] == 96
    assert set(report["stages_fps"]) >= {"decode", "end to end"}
    assert all(v > 0 for v in report["stages_fps"].values())
    assert report["realtime_factor"] == pytest.approx(report["stages_fps"]["end to end"] / 30.0)
