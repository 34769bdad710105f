"""Expression pretraining of the frame encoder: targets, the training-subjects-only rule, resume."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from visionattn.data.annotations import expression_profile
from visionattn.data.cache import settings_key
from visionattn.features import pretraining as ep
from visionattn.features.pretraining import augment, encoder_key, frame_targets
from visionattn.features.settings import EncoderPretraining, FeatureSettings
from visionattn.data.datasets import load_table
from visionattn.training.datamodule import ExpressionDataModule
from visionattn.utils import UserError


def raised_cosine(t, onset, apex, offset):
    """The profile written out per frame: rise over apex - onset + 1 steps, fall over offset - apex + 1."""
    if onset <= t <= apex:
        return 0.5 - 0.5 * math.cos(math.pi * (t - onset + 1) / (apex - onset + 1))
    if apex < t <= offset:
        return 0.5 + 0.5 * math.cos(math.pi * (t - apex) / (offset - apex + 1))
    return 0.0


def test_expression_profile_is_the_raised_cosine():
    got = expression_profile(14, 2, 5, 9)
    want = [raised_cosine(t, 2, 5, 9) for t in range(14)]
    assert np.allclose(got, want, atol=1e-6)
    assert got[5] == pytest.approx(1.0) and got[1] == 0 and got[10] == 0


def test_frame_targets_follow_frame_numbers_and_mask_unknown_emotions():
    frame_numbers = np.array(list(range(1, 11)) + list(range(21, 41)))  # a gap: frames 11-20 missing
    rows = pd.DataFrame({"onset": [3, 25], "apex": [6, 30], "offset": [9, 35], "emotion": ["positive", ""]})
    targets, known = frame_targets(rows, frame_numbers)
    assert targets.shape == (30, 5) and known.shape == (30,)
    first = np.array([raised_cosine(t, 2, 5, 8) for t in range(30)])      # frames 3, 6, 9 are rows 2, 5, 8
    second = np.array([raised_cosine(t, 14, 19, 24) for t in range(30)])  # frames 25, 30, 35 are rows 14, 19, 24
    assert np.allclose(targets[:, 2], first, atol=1e-6)                   # channel 1 + "positive"
    assert np.allclose(targets[:, 0], np.maximum(first, second), atol=1e-6)
    assert np.allclose(targets[:, [1, 3, 4]], 0)
    assert not known[15:24].any() and known[:14].all() and known[25:].all()


def test_augment_keeps_images_valid_and_differs_per_sample():
    x = torch.rand(6, 3, 32, 32)
    a = augment(x, 0.04, torch.Generator().manual_seed(0))
    b = augment(x, 0.04, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    assert not torch.allclose(a - x, (a - x)[:1].expand_as(a))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, synth_dataset):
    """A work folder whose ``ds`` is the shared synthetic dataset of 4 subjects (mp4 files)."""
    root = tmp_path_factory.mktemp("pretrain")
    (root / "ds").symlink_to(synth_dataset(subjects=4, seconds=10, seed=3, video=True), target_is_directory=True)
    return root


def settings(steps=3):
    return FeatureSettings(front_end="haar", streams=("encoder",), face_size=40, detect_every=10,
                           pretrain=EncoderPretraining(steps=steps, batch_size=6))


def datamodule(root, **kw):
    kw.setdefault("test_subjects", ["s20"])
    return ExpressionDataModule(str(root / "ds"), cache_root=str(root / "cache"), val_subjects=1, window=64, **kw)


@pytest.mark.slow
def test_encoder_learns_from_training_subjects_only(dataset):
    dm = datamodule(dataset, features=settings())
    dm.prepare_data()
    dm.setup()
    used = dm.frame_feature_settings  # what checkpoints record, for `visionattn detect`
    assert used.pretrain is None and used.checkpoint_path
    record = json.loads(open(used.checkpoint_path.replace(".pth", ".json")).read())
    assert record["train_subjects"] == dm.splits["train"] and record["val_subjects"] == dm.splits["val"]
    assert not set(record["train_subjects"]) & set(dm.splits["val"] + dm.splits["test"])
    assert set(record["validation"]) <= {"intensity_correlation", "emotion_accuracy_near_apex"}
    weights = torch.load(used.checkpoint_path, weights_only=True)
    assert not any(k.startswith("fc.") for k in weights)
    torch.manual_seed(0)
    import timm

    random = timm.create_model("resnet18", num_classes=0).state_dict()
    assert not torch.equal(weights["conv1.weight"], random["conv1.weight"])  # it trained
    assert dm.feature_dim == 512 and len(dm.videos["test"]) == 1
    stamp = (dm.cache_root / "encoders").stat().st_mtime_ns, list((dm.cache_root / "encoders").rglob("*.pth"))
    datamodule(dataset, features=settings()).prepare_data()  # cached: nothing is trained again
    assert list((dm.cache_root / "encoders").rglob("*.pth")) == stamp[1]


def test_each_loso_fold_gets_its_own_encoder(dataset):
    s = settings()
    table = load_table("synthetic", str(dataset / "ds"))
    keys = set()
    for fold in range(4):
        splits = datamodule(dataset, features=s, fold=fold, test_subjects=None).split(table)
        keys.add(settings_key(encoder_key(s, str(dataset / "ds"), splits["train"], splits["val"])))
    assert len(keys) == 4


def test_an_encoder_that_saw_a_test_subject_is_refused(dataset, tmp_path):
    fake = tmp_path / "encoder.pth"
    fake.write_bytes(b"x")
    fake.with_suffix(".json").write_text(json.dumps(
        {"train_subjects": ["s20"], "dataset_root": str((dataset / "ds").resolve())}))
    dm = datamodule(dataset, features=FeatureSettings(front_end="haar", streams=("encoder",), face_size=40,
                                                          checkpoint_path=str(fake)))
    with pytest.raises(UserError, match=r"pretrained on \['s20'\]"):
        dm.prepare_data()


def test_interrupted_pretraining_resumes_to_the_same_weights(dataset, tmp_path, monkeypatch):
    table = load_table("synthetic", str(dataset / "ds"))
    s = settings(steps=4)
    args = (table, ["s15", "s16"], [], s)
    cache = dataset / "cache"
    root = str(dataset / "ds")
    whole = ep.pretrain_frame_encoder(*args, tmp_path / "a" / "encoder.pth", cache, root, progress=False)

    monkeypatch.setattr(ep, "_SAVE_EVERY", 2)
    real_batch, calls = ep._batch, {"n": 0}

    def interrupted(*a):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_batch(*a)

    monkeypatch.setattr(ep, "_batch", interrupted)
    out = tmp_path / "b" / "encoder.pth"
    with pytest.raises(KeyboardInterrupt):
        ep.pretrain_frame_encoder(*args, out, cache, root, progress=False)
    assert not out.exists() and out.with_name("encoder.pth.partial").is_file()
    monkeypatch.setattr(ep, "_batch", real_batch)
    ep.pretrain_frame_encoder(*args, out, cache, root, progress=False)
    assert not out.with_name("encoder.pth.partial").exists()
    a, b = torch.load(whole, weights_only=True), torch.load(out, weights_only=True)
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
