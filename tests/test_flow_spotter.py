"""The training-free flow spotter (visionattn.spotting.flow) on synthetic motion streams.

The synthetic stream is built from a stated model of a facial movement, independently of the
spotter: each region has a 2-D position d(t) in % of the inter-ocular distance; an expression
moves the brows up (dy < 0) by a raised cosine of amplitude A over [onset, offset]; the head
(the nose row, raw) moves by its own displacement and leaks a fraction into every region's
residual (imperfect alignment). The motion stream observes, as visionattn.features.motion
defines it, g(t) = d(t) - d(t - L) with L = round(0.2 s * fps), plus two noises: per-frame
"state" jitter j(t) (crop alignment, which the difference carries as j(t) - j(t - L)) and
independent per-pair flow error. The first L frames are invalid (zeros), as the stream writes.
"""
import json
import time

import numpy as np
import pytest

from visionattn.data.annotations import EMOTIONS4
from visionattn.features.motion import REGION_NAMES
from visionattn.spotting.flow import (
    FlowSpotterSettings, spot_flow,
)
from visionattn.utils import UserError

R = {r: i for i, r in enumerate(REGION_NAMES)}
BROWS = ("right_brow", "left_brow")
SIGMA_PAIR = 0.3   # % IOD, per-pair flow error
SIGMA_STATE = 0.3  # % IOD, per-frame alignment jitter


def raised_cosine(n, onset, offset):
    t = np.arange(n, dtype=np.float64)
    u = (t - onset) / (offset - onset)
    return np.where((u >= 0) & (u <= 1), 0.5 * (1 - np.cos(2 * np.pi * np.clip(u, 0, 1))), 0.0)


def stream(n, fps, events=(), head=None, leak=0.0, seed=0, sigma_pair=SIGMA_PAIR, sigma_state=SIGMA_STATE,
           steps=()):
    """``(motion (n, 27), valid (n,))`` of the model above. ``events``: (onset, offset, A,
    regions); ``head``: (n, 2) head displacement or None; ``steps``: (frame, size, regions) lasting
    displacements (a new resting state)."""
    rng = np.random.default_rng(seed)
    lag = max(1, int(round(0.2 * fps)))
    d = rng.normal(0.0, sigma_state, (n, 9, 2))
    for onset, offset, amplitude, regions in events:
        for r in regions:
            d[:, R[r], 1] -= amplitude * raised_cosine(n, onset, offset)
    for frame, size, regions in steps:
        for r in regions:
            d[frame:, R[r], 1] += size
    if head is not None:
        for r in range(9):
            d[:, r] += head if r == R["nose"] else leak * head
    before = np.concatenate([np.repeat(d[:1], lag, axis=0), d])[:n]
    g = d - before + rng.normal(0.0, sigma_pair, d.shape)
    motion = np.zeros((n, 9, 3))
    motion[..., :2] = g
    motion[..., 2] = np.hypot(g[..., 0], g[..., 1]) + 0.5  # unused by the spotter; a realistic floor
    valid = np.ones(n, dtype=bool)
    valid[:lag] = False
    motion[~valid] = 0.0
    return motion.reshape(n, 27).astype(np.float32), valid


def iou(a, b):
    """MEGC interval IoU, inclusive frames (fedn.md, Metrics)."""
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]) + 1)
    return inter / ((a[1] - a[0] + 1) + (b[1] - b[0] + 1) - inter)


@pytest.mark.parametrize("fps", [30.0, 200.0])
@pytest.mark.parametrize("duration, kind", [(0.3, "micro"), (1.5, "macro")])
def test_finds_micro_and_macro_events(fps, duration, kind):
    n = int(12 * fps)
    onset = int(5 * fps)
    offset = onset + int(round(duration * fps)) - 1
    for seed in range(3):
        motion, valid = stream(n, fps, [(onset, offset, 3.0, BROWS)], seed=seed)
        result = spot_flow(motion, valid, fps)
        assert len(result.intervals) == 1, (seed, result.intervals)
        x = result.intervals[0]
        assert iou((x.onset, x.offset), (onset, offset)) >= 0.5, (seed, x, onset, offset)
        assert x.type == kind
        assert x.onset <= x.apex <= x.offset
        # Lag correction: the motion at t measures t - L .. t, so uncorrected intervals would sit
        # (L - 1) / 2 frames late (2.5 at 30 fps, 19.5 at 200 fps); corrected, they are centred.
        centre_error = (x.onset + x.offset) / 2 - (onset + offset) / 2
        assert abs(centre_error) <= 0.02 * fps + 1, (seed, centre_error)
        assert result.energy.shape == (n,) and result.energy[x.apex] >= result.threshold


@pytest.mark.parametrize("fps, minutes", [(30.0, 5.0), (200.0, 1.0)])
def test_pure_noise_gives_almost_no_false_alarms(fps, minutes):
    n = int(minutes * 60 * fps)
    alarms = 0
    for seed in range(5):
        motion, valid = stream(n, fps, seed=100 + seed)
        alarms += len(spot_flow(motion, valid, fps).intervals)
    # Stated bound: fewer than 0.2 false alarms per minute of Gaussian noise (0 measured).
    assert alarms / (5 * minutes) < 0.2


def test_lasting_change_is_not_an_expression():
    # A new resting position of the brows (and, separately, of a mouth corner): one flank only.
    fps, n = 30.0, 900
    motion, valid = stream(n, fps, steps=[(300, 3.0, BROWS), (600, -4.0, ("left_mouth_corner",))], seed=3)
    assert spot_flow(motion, valid, fps).intervals == []


def _head_nods(n, fps):
    head = np.zeros((n, 2))
    for k, start in enumerate(range(int(2 * fps), n - int(2 * fps), int(3 * fps))):
        length = int((0.5 + 0.25 * (k % 3)) * fps)
        head[:, 1 - k % 2] += 15.0 * raised_cosine(n, start, start + length)  # 15 % IOD nods and turns
    return head


@pytest.mark.parametrize("fps", [30.0, 200.0])
def test_head_motion_alone_gives_nothing(fps):
    n = int(20 * fps)
    head = _head_nods(n, fps)
    motion, valid = stream(n, fps, head=head, leak=0.1, seed=5)
    result = spot_flow(motion, valid, fps)
    assert result.intervals == []
    assert result.head_motion.sum() > 0
    # Control: without the head gate the 10 % leak (1.5 % IOD, several noise sd) is "found".
    ungated = spot_flow(motion, valid, fps, settings=FlowSpotterSettings(head_k=1e6, head_min=1e6))
    assert len(ungated.intervals) >= 1


def test_expression_during_still_head_survives_nods_elsewhere():
    fps, n = 30.0, 600
    head = np.zeros((n, 2))
    head[:, 0] = 15.0 * raised_cosine(n, 60, 90)
    onset, offset = 300, 344
    motion, valid = stream(n, fps, [(onset, offset, 3.0, BROWS)], head=head, leak=0.06, seed=6)
    result = spot_flow(motion, valid, fps)
    assert len(result.intervals) == 1
    x = result.intervals[0]
    assert iou((x.onset, x.offset), (onset, offset)) >= 0.5


def _spans_of(intervals, spans):
    return [[k for k, (a, b) in enumerate(spans) if a <= x.onset and x.offset <= b] for x in intervals]


@pytest.mark.parametrize("as_mask", [False, True])
def test_event_across_a_cut_is_not_reported_across_it(as_mask):
    fps, n = 30.0, 600
    lag = 6
    cut = 300
    motion, valid = stream(n, fps, [(cut - 15, cut + 15, 4.0, BROWS)], seed=7)
    # The motion stream after a cut: the first lag frames of the new shot are invalid.
    valid[cut:cut + lag] = False
    motion[cut:cut + lag] = 0.0
    if as_mask:
        segments = np.ones(n, dtype=bool)
        segments[cut - 1] = False  # a no-face frame marks the boundary in a mask
        spans = [(0, cut - 2), (cut, n - 1)]
    else:
        segments = spans = [(0, cut - 1), (cut, n - 1)]
    result = spot_flow(motion, valid, fps, segments)
    for x, inside in zip(result.intervals, _spans_of(result.intervals, spans)):
        assert len(inside) == 1, (x, spans)
        assert valid[x.onset:x.offset + 1].all()


def test_each_long_shot_is_judged_against_its_own_noise():
    # Two 60 s shots of one video: a quiet close-up (noise 0.1 % IOD) with three clear brow
    # raises of 1.5 % IOD (over 10 of its noise units), then a wide shot whose flow is ten times
    # noisier and holds no expression. Pooled over the video, the noise level lands between the
    # two, so the quiet shot's movements would fall under the threshold and the noisy shot's
    # noise would rise above it.
    fps, n = 30.0, 1800
    events = [(300, 345, 1.5, BROWS), (900, 945, 1.5, BROWS), (1500, 1545, 1.5, BROWS)]
    quiet, valid_q = stream(n, fps, events, seed=3, sigma_pair=0.1, sigma_state=0.1)
    noisy, valid_n = stream(n, fps, seed=4, sigma_pair=1.0, sigma_state=1.0)
    motion, valid = np.concatenate([quiet, noisy]), np.concatenate([valid_q, valid_n])
    spans = [(0, n - 1), (n, 2 * n - 1)]
    found = spot_flow(motion, valid, fps, spans).intervals
    assert [x for x in found if x.onset >= n] == []
    for onset, offset, _, _ in events:
        assert any(iou((x.onset, x.offset), (onset, offset)) >= 0.5 for x in found), (onset, offset, found)
    # the same video judged against its pooled noise (spans shorter than the setting) misses
    # the quiet shot's movements or invents some in the noisy one
    pooled = spot_flow(motion, valid, fps, spans, settings=FlowSpotterSettings(span_noise_min_s=120.0)).intervals
    hits = sum(any(iou((x.onset, x.offset), (on, off)) >= 0.5 for x in pooled) for on, off, _, _ in events)
    assert hits < 3 or any(x.onset >= n for x in pooled)


def test_adjacent_tracks_without_a_cut_never_mix():
    # Two tracks touching at frame 300 with no cut and no gap: frames 300..305 compare a face of
    # the old track (t - lag) with one of the new, so they must not be used at all.
    fps, n = 30.0, 600
    motion, valid = stream(n, fps, [(290, 310, 4.0, BROWS)], seed=8)
    spans = [(0, 299), (300, n - 1)]
    result = spot_flow(motion, valid, fps, spans)
    assert not result.usable[300:306].any()
    assert result.usable[306:].all() and result.usable[6:300].all()
    for inside in _spans_of(result.intervals, spans):
        assert len(inside) == 1
    assert all(not (x.onset <= 305 and x.offset >= 300) for x in result.intervals)


def test_invalid_frames_never_fall_inside_an_interval():
    fps, n = 30.0, 900
    events = [(200, 244, 3.0, BROWS), (500, 508, 3.0, BROWS), (700, 790, 3.0, ("chin",))]
    motion, valid = stream(n, fps, events, seed=9)
    rng = np.random.default_rng(0)
    holes = np.concatenate([[220, 221, 222, 504], rng.choice(np.arange(6, n), 20, replace=False)])
    valid[holes] = False
    motion[holes] = 0.0
    result = spot_flow(motion, valid, fps)
    assert result.intervals
    for x in result.intervals:
        assert valid[x.onset:x.offset + 1].all(), x
        assert result.usable[x.onset:x.offset + 1].all()
    assert not result.usable[~valid].any()
    assert np.all(result.energy[~result.usable] == 0)


def test_no_face_gives_nothing():
    fps, n = 30.0, 300
    motion, valid = stream(n, fps, [(100, 140, 5.0, BROWS)])
    assert spot_flow(motion, np.zeros(n, dtype=bool), fps).intervals == []
    assert spot_flow(motion, valid, fps, segments_ok=[]).intervals == []
    empty = spot_flow(np.zeros((0, 27)), np.zeros(0, dtype=bool), fps)
    assert empty.intervals == [] and empty.energy.shape == (0,)


def test_score_grows_with_the_peak_and_stays_in_range():
    fps, n = 30.0, 900
    motion, valid = stream(n, fps, [(200, 244, 2.0, BROWS), (600, 644, 6.0, BROWS)], seed=10)
    result = spot_flow(motion, valid, fps)
    assert len(result.intervals) == 2
    weak, strong = result.intervals
    assert weak.peak < strong.peak and weak.score < strong.score
    for x in result.intervals:
        assert 0.5 <= x.score < 1.0
        assert x.score == pytest.approx(x.peak / (x.peak + result.threshold))


# ------------------------------------------------------------------ emotion

def _probs(n, rest, apex_rows, apex):
    p = np.tile(np.asarray(rest, dtype=np.float64), (n, 1))
    p[apex_rows] = apex
    return p


def _one(fps=30.0, n=600, onset=300, offset=344, seed=11):
    motion, valid = stream(n, fps, [(onset, offset, 4.0, BROWS)], seed=seed)
    x = spot_flow(motion, valid, fps).intervals
    assert len(x) == 1
    return motion, valid, x[0]


#                angry disgust fear happy sad surprise neutral
NEUTRAL_FACE = [0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.88]
SAD_FACE = [0.00, 0.00, 0.00, 0.00, 0.60, 0.00, 0.40]


@pytest.mark.parametrize("rest, apex, baseline, expected", [
    (NEUTRAL_FACE, [0.0, 0.0, 0.0, 0.9, 0.0, 0.0, 0.1], True, "positive"),
    # The 4-class posterior decides, not the top FER class: happy 0.3 < angry+fear+sad 0.6.
    (NEUTRAL_FACE, [0.2, 0.0, 0.2, 0.3, 0.2, 0.0, 0.1], False, "negative"),
    # A resting face read as sad: in absolute terms the apex is still "negative", but what
    # the expression added is surprise.
    (SAD_FACE, [0.0, 0.0, 0.0, 0.0, 0.55, 0.35, 0.10], False, "negative"),
    (SAD_FACE, [0.0, 0.0, 0.0, 0.0, 0.55, 0.35, 0.10], True, "surprise"),
    # Nothing gained (the apex reads as the rest does): others.
    (SAD_FACE, SAD_FACE, True, "others"),
    (NEUTRAL_FACE, NEUTRAL_FACE, False, "others"),
])
def test_emotion_near_the_apex(rest, apex, baseline, expected):
    fps = 30.0
    motion, valid, x = _one(fps)
    half = int(round(0.2 * fps / 2))
    p = _probs(len(valid), rest, slice(x.apex - half, x.apex + half + 1), apex)
    settings = FlowSpotterSettings(emotion_baseline=baseline)
    got = spot_flow(motion, valid, fps, emotion_probs=p, settings=settings).intervals
    assert [y.emotion for y in got] == [expected]


def test_emotion_uses_only_the_apex_window_and_ignores_missing_rows():
    fps = 30.0
    motion, valid, x = _one(fps)
    n = len(valid)
    p = _probs(n, NEUTRAL_FACE, slice(x.onset, x.offset + 1), [0.9, 0, 0, 0, 0, 0, 0.1])  # angry...
    p[x.apex - 2:x.apex + 3] = [0, 0, 0, 0, 0, 0.9, 0.1]  # ...but surprise at the apex
    p[x.apex + 1] = np.nan  # a frame without a face probability
    got = spot_flow(motion, valid, fps, emotion_probs=p).intervals
    assert [y.emotion for y in got] == ["surprise"]
    assert spot_flow(motion, valid, fps).intervals[0].emotion == "others"  # no probabilities
    p[:] = np.nan
    assert spot_flow(motion, valid, fps, emotion_probs=p).intervals[0].emotion == "others"


# ------------------------------------------------------------------ settings, errors, speed

def test_settings_record_is_json_and_bad_settings_are_user_errors():
    record = FlowSpotterSettings().settings()
    assert json.loads(json.dumps(record)) == record
    assert record["method"] == "flow" and record["micro_max_s"] == 0.5
    motion, valid = stream(60, 30.0)
    for bad in (dict(edge_fraction=1.5), dict(peak_k=0), dict(regions=("nose",)), dict(regions=("forehead",)),
                dict(min_duration_s=5.0), dict(scale_ratio=1.0)):
        with pytest.raises(UserError):
            spot_flow(motion, valid, 30.0, settings=FlowSpotterSettings(**bad))
    with pytest.raises(UserError):
        spot_flow(motion, valid, 0.0)
    with pytest.raises(ValueError):
        spot_flow(motion[:, :26], valid, 30.0)
    with pytest.raises(ValueError):
        spot_flow(motion, valid, 30.0, segments_ok=[(0, 80)])


def test_one_hour_is_fast():
    fps = 30.0
    n = int(3600 * fps)
    rng = np.random.default_rng(0)
    motion = rng.normal(0, 0.3, (n, 27)).astype(np.float32)
    valid = np.ones(n, dtype=bool)
    valid[:6] = False
    start = time.perf_counter()
    spot_flow(motion, valid, fps)
    # Measured about 0.3 s; the bound leaves room for a loaded machine.
    assert time.perf_counter() - start < 5.0
