"""Feature-row layout and stream dropout of the training windows.

The expected column ranges are written out from the row's documented order (the landmark
front end's two flags, then motion 27, appearance logits 7 and embedding 128, the encoder's
width last), not computed by the code under test.
"""
import numpy as np
import pytest
import torch

from visionattn.features.contract import FeatureContract, feature_layout
from visionattn.features.settings import FeatureSettings
from visionattn.training.datamodule import ExpressionDataModule, TrainWindows, VideoRecord
from visionattn.utils import UserError


def test_layout_of_the_default_features():
    assert feature_layout(FeatureSettings()) == {
        "face": (0, 1), "motion_valid": (1, 2), "motion": (2, 29),
        "appearance_logits": (29, 36), "appearance_embedding": (36, 164)}
    assert FeatureContract().stream_columns() == {"motion": (2, 29), "appearance": (29, 164)}


def test_layout_follows_the_stream_order_and_the_encoder_width():
    settings = FeatureSettings(streams=("appearance", "encoder", "motion"))
    assert FeatureContract.for_rows(settings, 30.0, 2 + 135 + 512 + 27).stream_columns() == {
        "appearance": (2, 137), "encoder": (137, 649), "motion": (649, 676)}
    haar = FeatureSettings(front_end="haar", streams=("encoder",))
    assert FeatureContract.for_rows(haar, 30.0, 512).stream_columns() == {"encoder": (0, 512)}
    with pytest.raises(UserError, match="165-wide feature rows do not fit"):
        FeatureContract.for_rows(FeatureSettings(), 30.0, 165)


def _video(rows: int = 400, dim: int = 164) -> VideoRecord:
    features = np.ones((rows, dim), np.float32)
    features.flags.writeable = False  # as the read-only cache memmap
    return VideoRecord("s1", "v1", features, np.arange(rows), segments=np.zeros((0, 2), np.float32),
                       types=np.zeros(0, int), emotions=np.zeros(0, int))


def _windows(p: float, n: int = 400):
    torch.manual_seed(0)
    streams = list(FeatureContract().stream_columns().values())
    ds = TrainWindows([_video()], window=64, length=n, streams=streams, stream_dropout=p)
    return [ds[i]["features"] for i in range(n)]


def test_dropped_windows_keep_exactly_one_stream_and_the_flags():
    windows = _windows(1.0)
    kept_motion = 0
    for x in windows:
        motion, appearance = x[:, 2:29], x[:, 29:164]
        assert torch.all(x[:, :2] == 1)  # face and motion_valid flags are never dropped
        assert (bool(torch.all(motion == 1)) and bool(torch.all(appearance == 0))) or \
               (bool(torch.all(motion == 0)) and bool(torch.all(appearance == 1)))
        kept_motion += bool(torch.all(motion == 1))
    # the stream kept is uniform: 400 draws, 200 expected, 5 sigma = 50
    assert 150 < kept_motion < 250


def test_dropout_rate_and_no_dropout():
    dropped = sum(bool(torch.any(x == 0)) for x in _windows(0.3))
    assert 0.3 * 400 - 46 < dropped < 0.3 * 400 + 46  # 5 sigma of Binomial(400, 0.3)
    assert all(bool(torch.all(x == 1)) for x in _windows(0.0))


def test_one_stream_is_never_dropped():
    torch.manual_seed(0)
    ds = TrainWindows([_video(dim=29)], window=64, length=50, streams=[(2, 29)], stream_dropout=1.0)
    assert all(bool(torch.all(ds[i]["features"] == 1)) for i in range(50))


def test_the_cache_is_never_written():
    video = _video()
    ds = TrainWindows([video], window=64, length=20, streams=[(2, 29), (29, 164)], stream_dropout=1.0)
    for i in range(20):
        ds[i]
    assert np.all(video.features == 1)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_stream_dropout_outside_0_1_names_the_key(p):
    with pytest.raises(UserError, match="data.stream_dropout"):
        ExpressionDataModule(root="nowhere", stream_dropout=p)
