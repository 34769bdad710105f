import copy
import json
import os
from pathlib import Path

import pytest
import torch

# Tests are CPU-only and must give the same results on any machine.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _detect_json_follows_its_schema(monkeypatch):
    """Every ``<name>.json`` that ``visionattn detect`` writes, in any test, is validated
    against the published schema (visionattn/inference/detect_result.schema.json)."""
    from visionattn.inference import command

    made = command._detect_one

    def validated(*args, **kwargs):
        json_path = made(*args, **kwargs)
        validate_detect_json(json_path)
        return json_path

    monkeypatch.setattr(command, "_detect_one", validated)


def validate_detect_json(path) -> dict:
    """The parsed JSON at ``path``, after validating it against the schema (jsonschema)."""
    import json

    import jsonschema

    from visionattn.inference.result import SCHEMA_FILE

    data = json.loads(open(path, encoding="utf-8").read())
    jsonschema.validate(data, json.loads(SCHEMA_FILE.read_text()), cls=jsonschema.Draft202012Validator)
    return data


# ------------------------------------------------------------------------------------------
# The tiny FEDN recipe and the synthetic datasets the end-to-end tests train on (test_detect,
# test_training_module, test_samm_training, test_features_command, test_encoder_pretraining).

TINY_FEDN = {"embed_dim": 32, "num_heads": 2, "num_levels": 4,
             "regression_ranges": [[0, 4], [4, 8], [8, 16], [16, 10000]]}
TINY_FEATURES = {"face_size": 64, "detect_every": 10}  # the default streams, on small faces
TINY_DATA = {"dataset": "synthetic", "features": TINY_FEATURES, "val_subjects": 1, "window": 128,
             "windows_per_epoch": 4, "batch_size": 2}


def _recipe(dataset, work, trainer=None, fedn=None, data=None) -> dict:
    return {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "enable_model_summary": False,
                    "default_root_dir": str(work / "run"), **(trainer or {})},
        "model": {"fedn": {**copy.deepcopy(TINY_FEDN), **(fedn or {})}},
        "data": {**copy.deepcopy(TINY_DATA), "root": str(dataset), "cache_root": str(work / "cache"), **(data or {})},
    }


@pytest.fixture(scope="session")
def tiny_recipe():
    """``make(dataset, work, trainer=None, fedn=None, data=None) -> dict``: the tiny recipe as a
    LightningCLI config for the dataset folder ``dataset``, writing its run and feature cache
    under ``work``; ``trainer``/``fedn``/``data`` add or override keys of those sections."""
    return _recipe


@pytest.fixture(scope="session")
def tiny_overrides():
    """The tiny recipe's model and data choices as command-line overrides (for a config given
    by file, such as configs/fedn/*.yaml): ``make(**data) -> list``."""
    def make(**data) -> list:
        flags = [f"--model.fedn.{k}={json.dumps(v)}" for k, v in TINY_FEDN.items()]
        for key, value in {**TINY_DATA, **data}.items():
            if key == "dataset":
                continue
            if isinstance(value, dict):
                flags += [f"--data.{key}.{k}={json.dumps(v)}" for k, v in value.items()]
            else:
                flags.append(f"--data.{key}={json.dumps(value)}")
        return flags
    return make


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory):
    """``make(subjects=3, seconds=10, seed=2, video=False) -> Path``: a ``visionattn synth``
    dataset (one video per subject; frame folders, or mp4 files with ``video``), made once per
    session for each set of arguments and shared: treat it as read-only."""
    from visionattn.cli import main

    made = {}

    def make(subjects: int = 3, seconds: float = 10.0, seed: int = 2, video: bool = False) -> Path:
        key = (subjects, float(seconds), seed, video)
        if key not in made:
            out = tmp_path_factory.mktemp("synth") / "ds"
            assert main(["synth", "--out", str(out), "--subjects", str(subjects), "--videos-per-subject", "1",
                         "--seconds", f"{seconds:g}", "--seed", str(seed),
                         "--format", "video" if video else "frames"]) == 0
            made[key] = out
        return made[key]

    return make
