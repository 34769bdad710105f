"""Facial motion features (visionattn.features.motion).

Images are smooth random texture moved by known displacement fields; a hand-made 68-point
face layout (iBUG order, as documented in visionattn/faces/landmarks68.py) places the regions.
Expected values come from the displacement fields and from a brute-force statement of the
region definition (pixel centres within radius * IOD of an anchor), not from the module.
"""
import json

import cv2
import numpy as np
import pytest

from visionattn.features import motion
from visionattn.utils import UserError

S = 112
RIGHT_EYE = np.array([38.0, 48.0])  # subject's right eye: image left
LEFT_EYE = np.array([74.0, 48.0])
IOD = 36.0
PX = 100.0 / IOD  # one pixel in the features' unit (percent of the inter-ocular distance)


def _ellipse(cx, cy, a, b, angles):
    angles = np.asarray(angles)
    return np.stack([cx + a * np.cos(angles), cy - b * np.sin(angles)], 1)  # y down: sin > 0 is up


def face_landmarks():
    """(68, 2) points of a frontal face in a 112-pixel crop, in the iBUG 68-point order, with
    the usual proportions in inter-ocular distances below the eyes: nose tip 0.6, upper lip
    0.9, mouth 1.1, chin 1.75."""
    pts = np.zeros((68, 2))
    theta = np.linspace(np.pi, 0, 17)  # jaw from the subject's right (image left) under the chin
    pts[0:17] = np.stack([56 + 38 * np.cos(theta), 50 + 61 * np.sin(theta)], 1)
    arch = 3 * np.sin(np.pi * np.arange(5) / 4)
    pts[17:22] = np.stack([np.linspace(26, 50, 5), 36 - arch], 1)
    pts[22:27] = np.stack([np.linspace(62, 86, 5), 36 - arch], 1)
    pts[27:31] = np.stack([np.full(4, 56.0), [50, 57, 63, 70]], 1)
    pts[31:36] = np.stack([[48, 52, 56, 60, 64], [73, 74, 75, 74, 73]], 1)
    eye_angles = [np.pi, 2 * np.pi / 3, np.pi / 3, 0, -np.pi / 3, -2 * np.pi / 3]
    pts[36:42] = _ellipse(*RIGHT_EYE, 7, 3, eye_angles)
    pts[42:48] = _ellipse(*LEFT_EYE, 7, 3, eye_angles)
    pts[48:60] = _ellipse(56, 88, 15, 7, np.pi - np.arange(12) * np.pi / 6)
    pts[60:68] = _ellipse(56, 88, 10, 2, np.pi - np.arange(8) * np.pi / 4)
    return pts


LANDMARKS = face_landmarks()


def texture(seed=0, size=S):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.normal(0, 1, (size, size)), (0, 0), 1.5)
    img = (img - img.mean()) / img.std()
    return np.clip(128 + 45 * img, 0, 255)


def moved(img, dx, dy):
    """The image after each point moved by (dx, dy) pixels (scalars or (H, W) fields)."""
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx = np.broadcast_to(np.float32(dx), (h, w)) if np.isscalar(dx) else dx.astype(np.float32)
    dy = np.broadcast_to(np.float32(dy), (h, w)) if np.isscalar(dy) else dy.astype(np.float32)
    out = cv2.remap(img.astype(np.float32), xx - dx, yy - dy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def brute_masks(shape, landmarks, radius=motion.DEFAULT_RADIUS):
    """Region masks straight from the definition: pixel centre within radius * IOD of an anchor."""
    iod = np.hypot(*(landmarks[42:48].mean(0) - landmarks[36:42].mean(0)))
    masks = {}
    for name, anchors in motion.REGIONS.items():
        mask = np.zeros(shape, bool)
        for anchor in anchors:
            ax, ay = landmarks[list(anchor)].mean(0)
            for y in range(shape[0]):
                for x in range(shape[1]):
                    if (x - ax) ** 2 + (y - ay) ** 2 <= (radius * iod) ** 2:
                        mask[y, x] = True
        masks[name] = mask
    return masks, iod


MASKS, _ = brute_masks((S, S), LANDMARKS)


def row(features, name):
    """(dx, dy, mag) of one region from a (R, 3) or flat (R*3,) feature array."""
    return np.asarray(features).reshape(-1, 3)[motion.REGION_NAMES.index(name)]


def test_template_is_a_sane_face():
    assert np.hypot(*(LANDMARKS[42:48].mean(0) - LANDMARKS[36:42].mean(0))) == pytest.approx(IOD)
    assert motion.inter_ocular_distance(LANDMARKS) == pytest.approx(IOD)
    for name, mask in MASKS.items():
        assert mask.sum() > 40, name  # every region has pixels to average
    # brows and mouth pieces do not share pixels with the eyes or the nose
    assert not (MASKS["right_brow"] & MASKS["right_eye"]).any()
    assert not (MASKS["nose"] & (MASKS["right_eye"] | MASKS["left_eye"] | MASKS["mouth"])).any()


def test_names_and_dim():
    names = motion.feature_names()
    stream = motion.FacialMotionStream(fps=30)
    assert len(names) == len(set(names)) == stream.dim == 3 * len(motion.REGION_NAMES)
    assert {"left_brow.dy", "right_mouth_corner.dx", "chin.mag", "nose.dx"} <= set(names)
    assert stream.feature_names() == names


def test_region_motion_matches_the_definition():
    h = 96  # the chin region (anchors near y = 102, radius 5.4) is cut off: its row must be zero
    yy, xx = np.mgrid[0:h, 0:S].astype(np.float64)
    flow = np.stack([0.7 + 0.02 * xx - 0.01 * yy, -0.3 + 0.5 * np.sin(xx / 9.0) * np.cos(yy / 7.0)], -1).astype(np.float32)
    masks, iod = brute_masks((h, S), LANDMARKS)
    got = motion.region_motion(flow, LANDMARKS)
    assert got.shape == (len(motion.REGION_NAMES), 3) and got.dtype == np.float32
    f64 = flow.astype(np.float64)
    head = f64[masks["nose"]].mean(0)
    for name in motion.REGION_NAMES:
        if not masks[name].any():
            assert name == "chin"
            np.testing.assert_array_equal(row(got, name), 0)
            continue
        vectors = f64[masks[name]]
        residual = vectors - head
        mean = vectors.mean(0) if name == "nose" else residual.mean(0)
        want = np.r_[mean, np.hypot(residual[:, 0], residual[:, 1]).mean()] * 100 / iod
        np.testing.assert_allclose(row(got, name), want, rtol=1e-5, atol=1e-5, err_msg=name)
    assert masks["mouth"].any() and not masks["chin"].any()
    with pytest.raises(ValueError):
        motion.region_motion(flow, LANDMARKS + 500)  # nose outside the image


@pytest.mark.parametrize("method", motion.FLOW_METHODS)
@pytest.mark.parametrize("shift", [(0.6, -0.4), (2.0, 1.5)])
def test_flow_reads_a_known_shift_in_every_region(method, shift):
    img = texture(1)
    flow = motion.FlowEstimator(method)(moved(img, 0, 0), moved(img, *shift))
    assert flow.shape == (S, S, 2)
    for name, mask in MASKS.items():
        np.testing.assert_allclose(flow[mask].mean(0), shift, atol=0.2, err_msg=f"{method} {name}")


@pytest.mark.parametrize("method", ["farneback", "dis_fast"])
def test_head_motion_is_removed(method):
    img = texture(2)
    shift = (1.3, -0.8)
    stream = motion.FacialMotionStream(fps=30, interval_s=1 / 30, method=method)
    stream.push(0, moved(img, 0, 0), LANDMARKS)
    features, valid = stream.push(1, moved(img, *shift), LANDMARKS)
    assert valid
    np.testing.assert_allclose(row(features, "nose")[:2], np.array(shift) * PX, atol=0.15 * PX)
    for name in motion.REGION_NAMES:
        if name != "nose":
            # residual motion below 0.1 pixel everywhere, against a head motion of 1.5 pixels
            assert np.all(np.abs(row(features, name)[:2]) < 0.1 * PX), (name, row(features, name))


def brow_field(amplitude, landmarks=LANDMARKS, sigma=5.0):
    """(dx, dy) fields moving the right brow up by `amplitude` pixels, fading with distance."""
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float64)
    brow = landmarks[17:22]
    d2 = np.min([(xx - x) ** 2 + (yy - y) ** 2 for x, y in brow], axis=0)
    g = np.exp(-d2 / (2 * sigma**2))
    return np.zeros_like(g), -amplitude * g


def test_local_brow_motion_stays_in_the_brow_rows():
    img = texture(3)
    dx, dy = brow_field(1.0)
    want_dy = dy[MASKS["right_brow"]].mean()  # true mean displacement over the brow region
    flow = motion.FlowEstimator()(moved(img, 0, 0), moved(img, dx, dy))
    got = motion.region_motion(flow, LANDMARKS)
    brow = row(got, "right_brow")
    # the flow's window smooths a motion this narrow: it reads 80-85 % of it
    assert 0.7 * want_dy * PX > brow[1] > 1.1 * want_dy * PX
    assert abs(brow[0]) < 0.1 * PX
    assert brow[2] > 0.5 * abs(want_dy) * PX
    # the nearby eye may see a little of it (the flow window is wider than the gap) ...
    assert abs(row(got, "right_eye")[1]) < 0.35 * abs(brow[1])
    # ... the rest of the face sees nothing
    for name in ("left_brow", "left_eye", "nose", "right_mouth_corner", "left_mouth_corner", "mouth", "chin"):
        assert np.all(np.abs(row(got, name)[:2]) < 0.08 * PX), (name, row(got, name))
        assert row(got, name)[2] < 0.25 * brow[2], name


def test_lag_is_in_seconds():
    """A brow raise (1.5 px over 0.3 s) filmed at 30 and 60 fps, interval 0.1 s: lags 3 and 6
    frames, and the same features at the same instants."""
    img = texture(4)

    def displacement(t):
        s = np.clip((t - 0.3) / 0.3, 0, 1)
        return 1.5 * s * s * (3 - 2 * s)  # smoothstep

    series = {}
    for fps in (30, 60):
        stream = motion.FacialMotionStream(fps=fps, interval_s=0.1)
        assert stream.lag == {30: 3, 60: 6}[fps]
        out = []
        for i in range(int(fps * 0.9)):
            dx, dy = brow_field(displacement(i / fps))
            out.append(stream.push(i, moved(img, dx, dy), LANDMARKS))
        series[fps] = out
    a = np.array([f for f, v in series[30][3:]])
    b = np.array([series[60][2 * k][0] for k in range(3, len(series[30]))])
    assert all(v for _, v in series[30][3:]) and all(v for _, v in series[60][6:])
    col = motion.feature_names().index("right_brow.dy")
    # the true brow-region displacement over each 0.1 s window
    g = -brow_field(1.0)[1][MASKS["right_brow"]].mean()
    truth = np.array([-(displacement(k / 30) - displacement(k / 30 - 0.1)) * g * PX for k in range(3, len(series[30]))])
    peak = np.abs(truth).max()
    assert np.abs(a[:, col] - b[:, col]).max() < 0.15 * peak
    assert np.abs(a[:, col] - truth).max() < 0.25 * peak
    assert np.corrcoef(a[:, col], b[:, col])[0, 1] > 0.97


def test_missing_faces_and_cuts_give_invalid_zeros():
    rng = np.random.default_rng(5)
    img = texture(5)
    n = 16
    aligned = np.stack([moved(img, *rng.uniform(-1, 1, 2)) for _ in range(n)])
    landmarks = np.repeat(LANDMARKS[None], n, 0)
    present = np.ones(n, bool)
    present[5] = False
    cuts = np.zeros(n, bool)
    cuts[10] = True
    features, valid = motion.motion_features(aligned, landmarks, present, cuts, fps=30, interval_s=0.1)
    assert features.shape == (n, 27) and features.dtype == np.float32
    # lag 3: frames 0-2 have no reference; 5 has no face and is 8's reference; the cut before
    # frame 10 separates 10, 11, 12 from their references 7, 8, 9; 13's reference is 10.
    invalid = {0, 1, 2, 5, 8, 10, 11, 12}
    assert valid.tolist() == [t not in invalid for t in range(n)]
    assert not features[~valid].any()
    assert np.all(np.abs(features[valid]).sum(1) > 0)

    # unusable landmarks (NaN) count as no face
    landmarks[7] = np.nan
    _, valid2 = motion.motion_features(aligned, landmarks, present, cuts, fps=30, interval_s=0.1)
    assert valid2.tolist() == [t not in invalid | {7} for t in range(n)]


def test_state_dict_resumes_exactly():
    rng = np.random.default_rng(6)
    img = texture(6)
    n = 20
    frames = [moved(img, *rng.uniform(-1, 1, 2)) for _ in range(n)]
    face = [t not in (9, 14) for t in range(n)]
    cut = [t == 8 for t in range(n)]

    def push(stream, t):
        return stream.push(t, frames[t] if face[t] else None, LANDMARKS if face[t] else None, cut[t])

    one = motion.FacialMotionStream(fps=50, interval_s=0.1)  # lag 5
    whole = [push(one, t) for t in range(n)]

    first = motion.FacialMotionStream(fps=50, interval_s=0.1)
    part = [push(first, t) for t in range(11)]  # buffer holds 6..10: a missing face and a cut
    state = json.loads(json.dumps(first.state_dict()))
    second = motion.FacialMotionStream(fps=50, interval_s=0.1)
    second.load_state_dict(state)
    part += [push(second, t) for t in range(11, n)]
    for (fa, va), (fb, vb) in zip(whole, part):
        assert va == vb
        np.testing.assert_array_equal(fa, fb)
    assert sum(v for _, v in whole) >= 5
    with pytest.raises(ValueError):
        motion.FacialMotionStream(fps=30, interval_s=0.1).load_state_dict(state)
    with pytest.raises(ValueError):
        second.push(n + 1, frames[0], LANDMARKS)  # skipped a frame


def test_settings_and_user_errors():
    base = motion.FacialMotionStream(fps=30).settings()
    json.dumps(base)
    assert motion.FacialMotionStream(fps=60).settings() == base  # frame rate is the video's
    for kwargs in ({"interval_s": 0.1}, {"method": "dis_fast"}, {"radius": 0.2}, {"flow_params": {"winsize": 11}}):
        assert motion.FacialMotionStream(fps=30, **kwargs).settings() != base, kwargs
    with pytest.raises(UserError, match="method"):
        motion.FacialMotionStream(fps=30, method="tvl1")
    with pytest.raises(UserError, match="flow_params"):
        motion.FacialMotionStream(fps=30, flow_params={"window": 11})
    with pytest.raises(UserError, match="fps"):
        motion.FacialMotionStream(fps=0)
