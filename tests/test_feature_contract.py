"""The feature contract (visionattn.features.contract): one statement of the model rate, the
motion interval and lag, and the column layout, shared by training, the record and detection."""
from __future__ import annotations

import dataclasses

import pytest

from visionattn.data.cache import settings_key
from visionattn.features.contract import FeatureContract
from visionattn.features.motion import motion_lag
from visionattn.features.settings import FeatureSettings
from visionattn.inference.bundled import bundled_record
from visionattn.inference.detector import FlowDetector, flow_settings
from visionattn.inference.record import DetectorRecord
from visionattn.spotting.flow import FlowSpotterSettings
from visionattn.utils import UserError

HAAR = FeatureSettings(front_end="haar", streams=("encoder",))


@pytest.mark.parametrize("interval_s,fps,lag", [
    (0.2, 30.0, 6), (0.1, 30.0, 3), (0.1, 60.0, 6), (0.2, 25.0, 5), (0.01, 30.0, 1), (0.25, 30.0, 8),
])
def test_motion_lag_is_the_interval_in_frames_at_least_one(interval_s, fps, lag):
    # round half to even, as Python's round: 0.25 s at 30 fps is 7.5 frames -> 8
    assert motion_lag(interval_s, fps) == lag
    contract = FeatureContract(FeatureSettings(motion_interval_s=interval_s), model_fps=fps)
    assert contract.motion_lag == lag and contract.motion_interval_s == interval_s


def test_cache_keys_are_the_settings_plus_a_rate_other_than_30():
    """Caches made before the contract keep their keys: at 30 fps the key is the settings' own,
    at another model rate it gains ``fps``."""
    settings = FeatureSettings()
    assert FeatureContract(settings).cache_key() == settings.key_settings()
    assert FeatureContract(settings, 25.0).cache_key() == dict(settings.key_settings(), fps=25.0)
    assert FeatureContract(HAAR).crops_key() == {"face_crops": HAAR.face_pipeline().settings()}
    # the Haar recipe's keys as the caches on disk name them (computed at 309cfa2)
    assert settings_key(FeatureContract(HAAR, 30.0).cache_key()) == "0849a32160b27dea"
    assert settings_key(FeatureContract(HAAR, 200.0).cache_key()) == "f6ae4fa7b8faae3b"
    assert settings_key(FeatureContract(HAAR, 30.0).crops_key()) == "3df2e545c0b6410c"
    assert settings_key(FeatureContract(HAAR, 200.0).crops_key()) == "2c897ad3865cb47d"


def test_bad_rate_and_width_name_the_quantity():
    with pytest.raises(UserError, match="model frame rate 0"):
        FeatureContract(model_fps=0)
    with pytest.raises(UserError, match="encoder width 512 does not fit"):
        FeatureContract(encoder_dim=512)
    with pytest.raises(UserError, match="100-wide feature rows"):
        FeatureContract.for_rows(FeatureSettings(), 30.0, 100)


def test_the_record_stores_the_contract_and_old_records_derive_it():
    record = bundled_record()  # written before the contract was stored
    contract = record.contract
    assert contract.model_fps == record.fps and contract.settings == record.features
    assert contract.dim == record.model.feature_dim
    stored = record.to_dict()
    assert stored["contract"] == {
        "model_fps": 30.0, "motion_interval_s": 0.2, "motion_lag": 6, "encoder_dim": 0,
        "layout": {"face": [0, 1], "motion_valid": [1, 2], "motion": [2, 29], "appearance_logits": [29, 36],
                   "appearance_embedding": [36, 164]}}
    assert DetectorRecord.from_dict(stored, "new.pt").contract == contract
    old = {k: v for k, v in stored.items() if k != "contract"}
    assert DetectorRecord.from_dict(old, "old.pt").contract == contract
    stored["contract"] = dict(stored["contract"], model_fps=25.0)
    with pytest.raises(UserError, match="bad.pt: detector record's feature contract"):
        DetectorRecord.from_dict(stored, "bad.pt")
    narrow = dict(old, model=dict(old["model"], feature_dim=100))
    with pytest.raises(UserError, match=r"narrow.pt: malformed detector record \(100-wide feature rows"):
        DetectorRecord.from_dict(narrow, "narrow.pt")


def test_the_flow_spotter_takes_the_interval_of_the_features():
    contract = FeatureContract(FeatureSettings(motion_interval_s=0.3))
    assert flow_settings(contract).interval_s == 0.3
    assert flow_settings(contract, FlowSpotterSettings(peak_k=9.0)).peak_k == 9.0
    detector = FlowDetector(FlowSpotterSettings(), model_fps=25.0)
    assert detector.contract.model_fps == 25.0
    assert detector.spotter.interval_s == detector.contract.motion_interval_s
    assert dataclasses.replace(detector.spotter, interval_s=0.2) == FlowSpotterSettings()
