"""The appearance spotter (visionattn.spotting.appearance) on constructed streams.

The streams are built from a stated model, independently of the spotter: the appearance network's
7 FER posteriors of a face at rest are mostly "neutral" (with a person-specific lean, e.g. toward
"sad"); an expression moves probability mass to its class along a raised cosine (or a plateau
with raised-cosine edges) over the frames it lasts; its onset is a movement of the mouth corners
(the motion stream's dx, dy in % IOD over the lag) well above the per-frame flow noise. What an
interval must be follows from that construction: the stretch where the class has gained at least
half of the mass over the resting face, the class itself as its emotion.
"""
import numpy as np
import pytest

from visionattn.data.annotations import EMOTIONS4
from visionattn.features.motion import REGION_NAMES
from visionattn.models.mini_xception import FER_CLASSES
from visionattn.spotting.appearance import AppearanceSpotterSettings, apex_emotions, neutral_reference, spot_appearance
from visionattn.utils import UserError

FPS = 30.0
FER = {name: i for i, name in enumerate(FER_CLASSES)}
MEGC_OF = {"happy": "positive", "surprise": "surprise", "sad": "negative", "angry": "negative"}


def iou(a, b):
    """MEGC interval IoU, inclusive frames (fedn.md, Metrics)."""
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]) + 1)
    return inter / ((a[1] - a[0] + 1) + (b[1] - b[0] + 1) - inter)


def shape(n, onset, offset, hold=False):
    """0..1 course of an expression over frames onset..offset: a raised cosine, or (``hold``) a
    plateau reached and left by quarter-length raised-cosine edges."""
    t = np.arange(n, dtype=np.float64)
    if not hold:
        u = np.clip((t - onset) / (offset - onset), 0, 1)
        return np.where((t >= onset) & (t <= offset), 0.5 * (1 - np.cos(2 * np.pi * u)), 0.0)
    edge = max(1, (offset - onset) // 8)
    up = np.clip((t - onset) / edge, 0, 1)
    down = np.clip((offset - t) / edge, 0, 1)
    return np.minimum(0.5 * (1 - np.cos(np.pi * up)), 0.5 * (1 - np.cos(np.pi * down)))


def streams(n, events=(), rest=None, seed=0, noise=0.02, motion_noise=0.3, moves=True):
    """``(probs (n, 7), motion (n, 27), valid (n,))``. ``events``: (onset, offset, FER class,
    strength, hold); ``rest``: the resting face's 7 posteriors (default 90 % neutral)."""
    rng = np.random.default_rng(seed)
    base = np.full(7, 0.1 / 6) if rest is None else np.asarray(rest, float)
    if rest is None:
        base[FER["neutral"]] = 0.9
    probs = np.repeat(base[None], n, 0)
    motion = rng.normal(0, motion_noise, (n, 9, 3))
    lag = int(round(0.2 * FPS))
    for onset, offset, name, strength, hold in events:
        course = strength * shape(n, onset, offset, hold)[:, None]
        target = np.eye(7)[FER[name]]
        probs = (1 - course) * probs + course * target
        if moves:  # the mouth corners move over the first lag frames of the onset (and back at the offset)
            for t in (onset, offset - lag):
                for region in ("right_mouth_corner", "left_mouth_corner"):
                    motion[t:t + lag, REGION_NAMES.index(region), :2] += 4.0
    probs = np.clip(probs + rng.normal(0, noise, probs.shape), 1e-4, None)
    probs /= probs.sum(1, keepdims=True)
    valid = np.ones(n, bool)
    valid[:lag] = False
    motion[~valid] = 0
    return probs, motion.reshape(n, 27), valid


def found(result):
    return [(i.onset, i.offset, i.emotion, i.type) for i in result.intervals]


@pytest.mark.parametrize("name", ["happy", "surprise", "sad"])
@pytest.mark.parametrize("seconds, kind", [(0.4, "micro"), (1.5, "macro")])
def test_one_expression_is_found_with_its_emotion(name, seconds, kind):
    n = int(6 * FPS)
    onset = int(2 * FPS)
    offset = onset + int(seconds * FPS) - 1
    for seed in range(3):
        probs, motion, valid = streams(n, [(onset, offset, name, 0.95, False)], seed=seed)
        result = spot_appearance(probs, motion, valid, FPS, [(0, n - 1)])
        assert len(result.intervals) == 1, (seed, found(result))
        x = result.intervals[0]
        assert x.emotion == MEGC_OF[name] and x.type == kind
        # the gain reaches half the mass on the middle of a raised cosine: about half its frames
        assert iou((x.onset, x.offset), (onset, offset)) >= 0.4, (x, onset, offset)
        assert onset <= x.apex <= offset


def test_a_held_expression_is_one_macro_interval():
    n = int(10 * FPS)
    onset, offset = int(1 * FPS), int(7 * FPS)  # held for six seconds
    probs, motion, valid = streams(n, [(onset, offset, "happy", 0.95, True)], seed=1, noise=0.05)
    # a one-frame dip of the reading in the middle (the network's flicker) does not split it
    probs[int(4 * FPS):int(4 * FPS) + 3] = probs[0]
    result = spot_appearance(probs, motion, valid, FPS, [(0, n - 1)])
    assert len(result.intervals) == 1, found(result)
    x = result.intervals[0]
    assert x.type == "macro" and x.emotion == "positive"
    assert iou((x.onset, x.offset), (onset, offset)) >= 0.8


def test_resting_lean_is_not_an_expression():
    """A person whose resting face the network reads as 40 % sad: measured against that face, not
    against "neutral", the lean is no expression; a smile still is."""
    rest = np.array([0.05, 0.0, 0.05, 0.0, 0.4, 0.0, 0.5])
    n = int(8 * FPS)
    probs, motion, valid = streams(n, [(int(4 * FPS), int(5.5 * FPS), "happy", 0.9, False)], rest=rest, seed=2)
    result = spot_appearance(probs, motion, valid, FPS, [(0, n - 1)])
    assert [x.emotion for x in result.intervals] == ["positive"], found(result)


def test_an_expression_under_way_at_the_first_frame_is_found_against_the_neutral_prior():
    """The clip never shows the face at rest: crying from the first frame, then laughing. The
    crying needs no onset movement (it began before the clip); the laugh's onset moves."""
    n = int(12 * FPS)
    switch = int(6 * FPS)
    probs, motion, valid = streams(n, [(switch, n + 60, "happy", 1.0, True)], seed=3)
    sad = np.eye(7)[FER["sad"]] * 0.9 + 0.1 / 7
    crying = np.arange(n) < switch
    probs[crying] = sad
    result = spot_appearance(probs, motion, valid, FPS, [(0, n - 1)])
    assert [(x.emotion, x.type) for x in result.intervals] == [("negative", "macro"), ("positive", "macro")], \
        found(result)
    first, second = result.intervals
    assert first.onset == 0 and iou((first.onset, first.offset), (0, switch - 1)) >= 0.8
    assert iou((second.onset, second.offset), (switch, n - 1)) >= 0.7


def test_a_change_of_reading_without_a_movement_is_refused():
    """The reading drifts to "sad" while the face does not move at its onset (lighting, a slow
    head turn): no expression."""
    n = int(8 * FPS)
    probs, motion, valid = streams(n, [(int(3 * FPS), int(5 * FPS), "sad", 0.9, False)], seed=4, moves=False)
    assert spot_appearance(probs, motion, valid, FPS, [(0, n - 1)]).intervals == []
    probs, motion, valid = streams(n, [(int(3 * FPS), int(5 * FPS), "sad", 0.9, False)], seed=4, moves=True)
    assert [x.emotion for x in spot_appearance(probs, motion, valid, FPS, [(0, n - 1)]).intervals] == ["negative"]


def test_a_restless_clip_keeps_its_onsets():
    """Motion noise high for most of the clip (talking) but quiet for its first third: the noise floor
    comes from the quiet seconds (the lower quartile), so the smile's onset movement still counts."""
    n = int(12 * FPS)
    onset = int(8 * FPS)
    probs, motion, valid = streams(n, [(onset, onset + 45, "happy", 0.95, False)], seed=5)
    rng = np.random.default_rng(0)
    loud = np.zeros(n, bool)
    loud[int(4 * FPS):] = True
    motion[loud] += rng.normal(0, 1.5, motion[loud].shape)  # 5x the quiet noise, everywhere after 4 s
    motion[~valid] = 0
    result = spot_appearance(probs, motion, valid, FPS, [(0, n - 1)])
    assert [x.emotion for x in result.intervals] == ["positive"], found(result)
    assert np.nanmedian(result.motion[:int(4 * FPS)]) < 2.0 < np.nanmedian(result.motion[loud])


def test_nothing_outside_face_spans_or_across_them():
    n = int(8 * FPS)
    onset, offset = int(3 * FPS), int(5 * FPS)
    probs, motion, valid = streams(n, [(onset, offset, "happy", 0.95, True)], seed=6)
    cut = int(4 * FPS)
    spans = [(0, cut - 1), (cut, int(6 * FPS))]  # a cut in the middle of the smile; no face after 6 s
    probs[int(6 * FPS) + 1:] = np.nan
    result = spot_appearance(probs, motion, valid, FPS, spans)
    for x in result.intervals:
        assert any(a <= x.onset <= x.offset <= b for a, b in spans), (x, spans)
    assert not result.usable[int(6 * FPS) + 1:].any() and (result.energy[int(6 * FPS) + 1:] == 0).all()
    # the smile's first part is found in the first shot
    assert any(x.emotion == "positive" and x.offset == cut - 1 for x in result.intervals), found(result)


def test_neutral_reference_by_brute_force():
    rng = np.random.default_rng(7)
    probs4 = rng.dirichlet(np.ones(4), size=50)
    for window in (1, 5, 50, 80):
        for rest_level in (0.2, 0.5, 0.9):
            reference, start = neutral_reference(probs4, window, rest_level)
            w = min(window, 50)
            means = [probs4[i:i + w, 3].mean() for i in range(50 - w + 1)]
            best = int(np.argmax(means))
            a = min(1.0, means[best] / rest_level)
            expected = a * probs4[best:best + w].mean(0) + (1 - a) * np.array([0, 0, 0, 1.0])
            assert start == best
            np.testing.assert_allclose(reference, expected, atol=1e-12)
            assert reference.sum() == pytest.approx(1.0)


def test_settings_are_checked():
    probs, motion, valid = streams(60)
    with pytest.raises(UserError, match="edge_gain"):
        spot_appearance(probs, motion, valid, FPS, [(0, 59)], AppearanceSpotterSettings(edge_gain=0.9))
    with pytest.raises(UserError, match="regions"):
        spot_appearance(probs, motion, valid, FPS, [(0, 59)], AppearanceSpotterSettings(regions=("nose",)))
    with pytest.raises(ValueError, match="emotion_probs"):
        spot_appearance(probs[:, :4], motion, valid, FPS, [(0, 59)])
    assert set(EMOTIONS4[:3]) == {"negative", "positive", "surprise"}


@pytest.mark.parametrize("moves_at_the_end", [True, False])
def test_an_expression_under_way_at_the_start_needs_a_movement_at_its_end(moves_at_the_end):
    """Sad from the first frame until 3 s, then at rest: no onset to see, so the face must move
    where the expression ends; a reading that just fades without a movement is refused."""
    n, end = int(8 * FPS), int(3 * FPS)
    probs, motion, valid = streams(n, seed=8)
    fade = np.clip((end - np.arange(n)) / 6, 0, 1)[:, None]  # the reading returns to rest over 0.2 s
    probs = fade * (np.eye(7)[FER["sad"]] * 0.9 + 0.1 / 7) + (1 - fade) * probs
    if moves_at_the_end:
        motion.reshape(n, 9, 3)[end - 6:end, REGION_NAMES.index("mouth"), :2] += 4.0
    result = spot_appearance(probs, motion, valid, FPS, [(0, n - 1)])
    if moves_at_the_end:
        assert [(x.onset, x.emotion) for x in result.intervals] == [(0, "negative")], found(result)
        assert iou((result.intervals[0].onset, result.intervals[0].offset), (0, end - 1)) >= 0.8
    else:
        assert result.intervals == [], found(result)
    # the same reading over the whole span (no start, no end seen) stands on the reading alone
    whole = np.repeat((np.eye(7)[FER["sad"]] * 0.9 + 0.1 / 7)[None], n, 0)
    assert [x.emotion for x in spot_appearance(whole, motion, valid, FPS, [(0, n - 1)]).intervals] == ["negative"]


def test_apex_emotions_read_each_interval_against_its_own_spans_neutral():
    """A trained detector's intervals labelled by the appearance network: the class that gained
    half the mass in the interval, ``others`` where nothing gained (a quiet stretch) or where the
    interval meets no face span. The second span's face rests on a lean toward "sad" (40 %): that
    lean is its neutral, so only what moves beyond it counts."""
    first, _, _ = streams(200, [(60, 100, "happy", 0.9, True), (150, 170, "surprise", 0.9, False)], seed=1)
    lean = np.full(7, 0.05)
    lean[FER["neutral"]], lean[FER["sad"]] = 0.35, 0.40
    lean /= lean.sum()
    second, _, _ = streams(200, [(80, 120, "angry", 0.9, True)], rest=lean, seed=2)
    probs = np.concatenate([first, np.full((20, 7), np.nan), second])
    spans = [(0, 199), (220, 419)]
    intervals = [(70, 90), (150, 170), (10, 30), (205, 215), (240, 280), (300, 340)]
    assert apex_emotions(probs, spans, intervals, FPS) == ["positive", "surprise", "others", "others", "others",
                                                           "negative"]
