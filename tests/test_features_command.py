"""`visionattn features`: videos split over torchrun processes, each cached once, resumable."""
import itertools
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from visionattn.cli import main
from visionattn.utils.distributed import Launch, launch_environment, partition
from visionattn.utils import UserError

LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS",
               "SLURM_LOCALID", "MASTER_ADDR", "MASTER_PORT")
VIDEOS = {"s15_0101", "s16_0101", "s19_0101"}


@pytest.fixture(autouse=True)
def single_process(monkeypatch):
    for name in LAUNCH_VARS:  # pytest itself may run under a launcher
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, synth_dataset, tiny_recipe):
    """``(work folder, dataset, config)``: the tiny recipe's data section on a synthetic dataset
    (`visionattn synth`'s shortest videos: 10 s, 300 frames at 30 fps)."""
    root = tmp_path_factory.mktemp("features")
    dataset = synth_dataset(subjects=3, seconds=10, seed=2)
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump({"data": tiny_recipe(dataset, root)["data"]}))
    return root, dataset, config


@pytest.fixture(scope="module")
def reference(tiny):
    """Single-process features of every video, made by the extraction library directly from the
    CAS(ME)^2 folder layout (rawpic/s15/15_0101<emotion>/img<n>.jpg -> video id s15_0101)."""
    from visionattn.features.contract import FeatureContract
    from visionattn.features.extraction import extract_features
    from visionattn.features.settings import FeatureSettings

    root, dataset, _ = tiny
    sources = {}
    for folder in sorted((dataset / "rawpic").glob("s*/*")):
        code = re.match(r"\d+_(\d{4})", folder.name).group(1)
        sources[f"{folder.parent.name}_{code}"] = (str(folder), 30.0)
    assert set(sources) == VIDEOS
    settings = FeatureSettings.from_dict(yaml.safe_load(tiny[2].read_text())["data"]["features"])
    cache = extract_features(sources, root / "ref_cache", FeatureContract(settings), progress=False)
    return {vid: (np.asarray(cache.load(vid), np.float32), cache.load_meta(vid)) for vid in sources}


def _cache_folder(root: Path) -> Path:
    folders = [p for p in (root / "cache").iterdir() if p.is_dir()]
    assert len(folders) == 1, folders  # one settings key: the command made the reference's features
    return folders[0]


@pytest.mark.slow
def test_torchrun_splits_videos_each_cached_once_and_equal_to_one_process(tiny, reference):
    root, _, config = tiny
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    env["PYTHONWARNINGS"] = "ignore"
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "visionattn.cli", "features", "--config", str(config), "--no-progress"],
        capture_output=True, text=True, env=env, timeout=600, cwd=root)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]

    planned = {int(r): set(filter(None, ids.split(", ")))
               for r, ids in re.findall(r"\[rank (\d)/2\] \d+ videos, \d+ frames: \d+ to extract \(([^)]*)\)",
                                        run.stdout)}
    done = {int(r): set(ids.split(", ")) - {"nothing"}
            for r, ids in re.findall(r"\[rank (\d)/2\] done: extracted (.*)", run.stdout)}
    assert set(planned) == set(done) == {0, 1}, run.stdout
    assert planned == done
    assert done[0] and done[1] and not done[0] & done[1]  # both worked, on different videos
    assert done[0] | done[1] == VIDEOS
    assert "extracted now   3" in run.stdout and "already cached  0" in run.stdout

    folder = _cache_folder(root)
    assert sorted(p.name for p in folder.glob("*.npy")) == sorted(f"{v}.npy" for v in VIDEOS)
    assert not list(folder.glob("*.partial")) and not list(folder.glob("*.progress.json"))
    for vid, (expected, meta) in reference.items():
        got = np.load(folder / f"{vid}.npy").astype(np.float32)
        assert got.shape == expected.shape == (300, expected.shape[1])
        # float16 rows; the processes ran with one thread each, the reference with several
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)
        assert json.loads((folder / f"{vid}.json").read_text())["faces"] == meta["faces"]


def test_rerun_extracts_only_the_missing_video(tiny, reference, capsys):
    root, _, config = tiny
    if len(list((root / "cache").glob("*/*.npy"))) < 3:  # run alone: fill the cache first
        assert main(["features", "--config", str(config), "--no-progress"]) == 0
    folder = _cache_folder(root)
    (folder / "s16_0101.npy").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.npy")}
    capsys.readouterr()
    assert main(["features", "--config", str(config), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "1 to extract (s16_0101), 2 cached already" in out
    assert "extracted now   1" in out and "already cached  2" in out
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("*.npy") if p.name in before} == before
    again = np.load(folder / "s16_0101.npy").astype(np.float32)
    np.testing.assert_allclose(again, reference["s16_0101"][0], rtol=1e-3, atol=1e-3)


def test_config_mistakes_are_one_line_errors(tiny, capsys):
    root, _, config = tiny

    def error_lines():
        # (other lines may be logging's complaints about an earlier test's captured stream)
        return [line for line in capsys.readouterr().err.splitlines() if line.startswith("visionattn features")]

    assert main(["features", "--config", str(config), "--", "--data.bogus_key=1"]) == 2
    err = error_lines()
    assert len(err) == 1 and "bogus_key" in err[0] and err[0].startswith("visionattn features: error:")
    assert main(["features", "--config", str(config), "--", f"--data.root={root / 'missing'}"]) == 2
    err = error_lines()
    assert len(err) == 1 and str(root / "missing") in err[0]


def _loads(frames, shares):
    return [sum(frames[v] for v in share) for share in shares]


def test_partition_is_disjoint_covering_and_balanced():
    rng = random.Random(0)
    for trial in range(200):
        frames = {f"v{i:03d}": rng.randint(1, 5000) for i in range(rng.randint(0, 40))}
        parts = rng.randint(1, 6)
        shares = partition(frames, parts)
        assert len(shares) == parts
        flat = [v for s in shares for v in s]
        assert len(flat) == len(set(flat)) and set(flat) == set(frames)
        loads = _loads(frames, shares)
        if frames:
            assert max(loads) - min(loads) <= max(frames.values())
        # the same split whatever order the table listed the videos in
        shuffled = dict(rng.sample(sorted(frames.items()), len(frames)))
        assert partition(shuffled, parts) == shares


def test_partition_close_to_the_best_split():
    # Graham (1969): longest-first greedy is within 4/3 - 1/(3m) of the best makespan;
    # the best one found here by trying every assignment
    rng = random.Random(1)
    for trial in range(30):
        frames = {f"v{i}": rng.randint(100, 2000) for i in range(7)}
        parts = 3
        best = min(max(sum(frames[v] for v, k in zip(frames, assign) if k == p) for p in range(parts))
                   for assign in itertools.product(range(parts), repeat=len(frames)))
        assert max(_loads(frames, partition(frames, parts))) <= (4 / 3 - 1 / (3 * parts)) * best + 1e-9
    # equal lengths: shares differ by at most one video
    shares = partition({f"v{i}": 300 for i in range(7)}, 3)
    assert sorted(len(s) for s in shares) == [2, 2, 3]


def test_launch_environment_from_torchrun_slurm_or_none():
    assert launch_environment({}) == Launch(0, 1, 0, "none")
    assert launch_environment({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1",
                               "SLURM_PROCID": "0", "SLURM_NTASKS": "2"}) == Launch(3, 8, 1, "torchrun")
    assert launch_environment({"SLURM_PROCID": "5", "SLURM_NTASKS": "6", "SLURM_LOCALID": "1"}) == \
        Launch(5, 6, 1, "slurm")
    # srun's step task count wins over the allocation's
    assert launch_environment({"SLURM_PROCID": "1", "SLURM_NTASKS": "8", "SLURM_STEP_NUM_TASKS": "2"}).world_size == 2
    with pytest.raises(UserError, match="rank 4"):
        launch_environment({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(UserError, match="WORLD_SIZE"):
        launch_environment({"RANK": "0", "WORLD_SIZE": "two"})
