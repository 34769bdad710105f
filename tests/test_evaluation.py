"""MEGC evaluation: every expected number below is worked out by hand in the comments."""
import json
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visionattn import cli
from visionattn.evaluation import (Interval, analysis_f1, analysis_f1_from_labels, average_precision,
                                   detection_map, evaluate, greedy_match, iou, overlap, read_intervals_csv,
                                   spotting_scores, strs, write_intervals_csv)
from visionattn.evaluation.intervals import meets
from visionattn.utils import UserError

HEADER = "subject,video,onset,offset,type,emotion"


def iv(onset, offset, type="micro", emotion="negative", video="v1", subject="s1", score=1.0):
    return Interval(subject, video, onset, offset, type, emotion, score)


def counts(block):
    return block["tp"], block["fp"], block["fn"]


# ---------------------------------------------------------------- IoU


def test_iou_touching_intervals_share_one_frame():
    # [1,5] and [5,9] share frame 5: inter 1, union 5 + 5 - 1 = 9.
    assert overlap(iv(1, 5), iv(5, 9)) == (1, 9)
    assert iou(iv(1, 5), iv(5, 9)) == pytest.approx(1 / 9)


def test_iou_exactly_half_matches_and_0_49_does_not():
    # [0,1] vs [0,3]: inter 2, union 2 + 4 - 2 = 4 -> exactly 0.5, which counts.
    assert overlap(iv(0, 1), iv(0, 3)) == (2, 4)
    assert iou(iv(0, 1), iv(0, 3)) == 0.5
    assert greedy_match([iv(0, 3)], [iv(0, 1)]) == [(0, 0)]
    # [0,48] vs [0,99]: inter 49, union 49 + 100 - 49 = 100 -> 0.49, no match.
    assert overlap(iv(0, 48), iv(0, 99)) == (49, 100)
    assert greedy_match([iv(0, 99)], [iv(0, 48)]) == []


def test_iou_identical_and_disjoint():
    assert iou(iv(3, 7), iv(3, 7)) == 1.0
    # [0,4] and [5,9] are adjacent but share no frame; [0,4] and [6,9] are apart.
    assert overlap(iv(0, 4), iv(5, 9)) == (0, 10)
    assert overlap(iv(0, 4), iv(6, 9)) == (0, 9)
    assert iou(iv(0, 4), iv(6, 9)) == 0.0


def test_threshold_is_exact_for_decimals():
    # inter 3 / union 10 is exactly 0.3, but 0.3 * 10 == 3.0000000000000004 in floats;
    # likewise 0.7 * 10 > 7. Both must count as meeting the threshold.
    assert overlap(iv(0, 5), iv(3, 9)) == (3, 10)
    assert meets(3, 10, 0.3) and meets(7, 10, 0.7) and meets(2, 4, 0.5) and meets(2, 4, "0.5")
    assert meets(2, 4, Fraction(1, 2))
    assert not meets(29, 100, 0.3)
    assert greedy_match([iv(3, 9)], [iv(0, 5)], threshold=0.3) == [(0, 0)]


# ---------------------------------------------------------------- spotting


def test_greedy_order_changes_the_match_and_the_counts():
    truths = [iv(0, 9), iv(4, 13)]  # T1, T2, in file order
    # P_a = [2,11] vs T1: inter 8, union 12 (0.67); vs T2: inter 8, union 12 (0.67).
    # P_b = [0,8]  vs T1: inter 9, union 10 (0.9);  vs T2: inter 5, union 14 (0.36).
    p_a, p_b = iv(2, 11), iv(0, 8)
    # P_a first takes T1 (the first truth it reaches); P_b then has only T2 at 0.36: FP.
    # TP 1, FP 1, FN 1 -> P = R = F1 = 0.5.
    s = spotting_scores(truths, [p_a, p_b])["micro"]
    assert counts(s) == (1, 1, 1)
    assert (s["precision"], s["recall"], s["f1"]) == (0.5, 0.5, 0.5)
    # P_b first takes T1, P_a takes T2: TP 2, FP 0, FN 0 -> F1 1.
    s = spotting_scores(truths, [p_b, p_a])["micro"]
    assert counts(s) == (2, 0, 0)
    assert s["f1"] == 1.0


def test_duplicate_predictions_give_one_tp_and_one_fp():
    s = spotting_scores([iv(10, 20)], [iv(10, 20), iv(10, 20)])["micro"]
    # TP 1, FP 1, FN 0: P 1/2, R 1, F1 = 2 * 0.5 * 1 / 1.5 = 2/3.
    assert counts(s) == (1, 1, 0)
    assert s["f1"] == pytest.approx(2 / 3)


def test_types_match_separately_and_overall_pools_counts():
    gt = [iv(0, 9, "micro"), iv(20, 40, "macro")]
    # The first prediction covers the micro truth exactly but is labelled macro.
    pred = [iv(0, 9, "macro"), iv(20, 40, "macro")]
    s = spotting_scores(gt, pred)
    assert counts(s["micro"]) == (0, 0, 1) and s["micro"]["f1"] == 0.0
    # macro: TP 1, FP 1, FN 0 -> F1 2/3.
    assert counts(s["macro"]) == (1, 1, 0) and s["macro"]["f1"] == pytest.approx(2 / 3)
    # overall: TP 1, FP 1, FN 1 -> P = R = F1 = 0.5.
    assert counts(s["overall"]) == (1, 1, 1) and s["overall"]["f1"] == 0.5


def test_videos_without_predictions_or_without_truths():
    gt = [iv(0, 9, video="a"), iv(30, 39, video="a"), iv(0, 9, video="b")]
    pred = [iv(0, 9, video="a"),                       # TP
            iv(0, 9, video="c"), iv(50, 60, video="c")]  # video c has no truth: 2 FP
    # Video b has a truth and no prediction, video a's second truth is missed: 2 FN.
    # Pooled: TP 1, FP 2, FN 2 -> P = R = 1/3, F1 = 1/3.
    s = spotting_scores(gt, pred)["overall"]
    assert counts(s) == (1, 2, 2)
    assert s["precision"] == pytest.approx(1 / 3) and s["f1"] == pytest.approx(1 / 3)


def test_same_frames_in_another_video_or_subject_do_not_match():
    gt = [iv(0, 9, subject="s1", video="v1")]
    pred = [iv(0, 9, subject="s2", video="v1"), iv(0, 9, subject="s1", video="v2")]
    assert counts(spotting_scores(gt, pred)["overall"]) == (0, 2, 1)


def test_no_predictions_gives_zero_scores():
    result = evaluate([iv(0, 9), iv(0, 9, "macro")], [])
    assert counts(result["spotting"]["overall"]) == (0, 0, 2)
    assert result["spotting"]["overall"]["precision"] == 0.0 and result["spotting"]["overall"]["f1"] == 0.0
    assert result["analysis_f1"] == 0.0 and result["strs"] == 0.0
    assert result["map"]["average"] == 0.0


# ---------------------------------------------------------------- analysis F1 and STRS

# Truths in video v1 (types mixed on purpose: pairs from both types are analysed together):
STRS_GT = [
    iv(0, 9, "micro", "negative"),
    iv(20, 29, "macro", "negative"),
    iv(40, 49, "micro", "positive"),
    iv(60, 69, "macro", "surprise"),
    iv(80, 89, "micro", "surprise"),   # never predicted: FN
]
STRS_PRED = [
    iv(0, 9, "micro", "negative"),     # true negative, predicted negative
    iv(20, 29, "macro", "positive"),   # true negative, predicted positive
    iv(40, 49, "micro", "positive"),   # true positive, predicted positive
    iv(60, 69, "macro", "negative"),   # true surprise, predicted negative
    iv(100, 109, "micro", "negative"),  # no truth there: FP
]


def test_analysis_f1_and_strs_three_classes():
    # Pairs (true, predicted): (neg, neg), (neg, pos), (pos, pos), (sur, neg).
    # negative: TP 1, FP 1 (sur->neg), FN 1 (neg->pos): P 1/2, R 1/2
    # positive: TP 1, FP 1 (neg->pos), FN 0:            P 1/2, R 1
    # surprise: TP 0, FP 0 -> P undefined = 0, FN 1:    P 0,   R 0
    # Pbar = 1/3, Rbar = 1/2, F1 = 2 * (1/6) / (5/6) = 0.4.
    assert analysis_f1(STRS_GT, STRS_PRED) == pytest.approx(0.4)
    # Spotting overall: TP 4, FP 1, FN 1 -> P = R = F1 = 0.8; STRS = 0.8 * 0.4 = 0.32.
    assert spotting_scores(STRS_GT, STRS_PRED)["overall"]["f1"] == pytest.approx(0.8)
    assert strs(STRS_GT, STRS_PRED) == pytest.approx(0.32)
    assert evaluate(STRS_GT, STRS_PRED)["strs"] == pytest.approx(0.32)


def test_analysis_f1_with_explicit_classes():
    # Only pairs whose true emotion is negative or positive: (neg, neg), (neg, pos), (pos, pos).
    # negative: TP 1, FP 0, FN 1: P 1, R 1/2; positive: TP 1, FP 1, FN 0: P 1/2, R 1.
    # Pbar = Rbar = 3/4 -> F1 = 0.75. Class names compare case-insensitively.
    assert analysis_f1(STRS_GT, STRS_PRED, classes=["Negative", "positive"]) == pytest.approx(0.75)
    # A predicted label outside the set only counts against the true class (FN), never as an FP.
    # negative: TP 1, FN 1 -> P 1, R 1/2 ; Pbar 1, Rbar 1/2 -> F1 2/3.
    pairs = [("negative", "negative"), ("negative", "others")]
    assert analysis_f1_from_labels(pairs, ["negative"]) == pytest.approx(2 / 3)
    assert analysis_f1_from_labels(pairs, []) == 0.0


# ---------------------------------------------------------------- detection mAP


def test_average_precision_all_point_interpolation():
    # Ranked TP, FP, TP with 2 truths: P 1, 1/2, 2/3; R 1/2, 1/2, 1.
    # Envelope: 1, 2/3, 2/3 -> AP = 1/2 * 1 + 0 + 1/2 * 2/3 = 5/6.
    assert average_precision([True, False, True], 2) == pytest.approx(5 / 6)
    assert average_precision([], 3) == 0.0


MAP_GT = [
    iv(0, 9, emotion="negative"), iv(20, 29, emotion="negative"), iv(0, 9, emotion="negative", video="v2"),
    iv(40, 49, emotion="positive", video="v2"),  # no positive prediction: AP 0
]
# Listed out of score order on purpose: scores decide the ranking.
MAP_PRED = [
    iv(50, 59, emotion="negative", score=0.6),               # 4th: no truth there, FP
    iv(0, 9, emotion="negative", score=0.9),                 # 1st: TP (v1 [0,9], IoU 1)
    iv(20, 25, emotion="negative", score=0.5),               # 5th: v1 [20,29], inter 6 / union 10 = 0.6
    iv(0, 9, emotion="negative", video="v2", score=0.7),     # 3rd: TP
    iv(0, 9, emotion="negative", score=0.8),                 # 2nd: duplicate of a matched truth, FP
    iv(0, 9, emotion="surprise", score=0.95),                # class not in the truth: ignored
]


def test_detection_map_hand_worked():
    # 3 negative truths. tIoU 0.3-0.6: ranked TP FP TP FP TP.
    #   P 1, 1/2, 2/3, 1/2, 3/5; R 1/3, 1/3, 2/3, 2/3, 1; envelope 1, 2/3, 2/3, 3/5, 3/5
    #   AP = 1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/5 = 34/45.
    # tIoU 0.7: the last one (IoU 0.6) misses: TP FP TP FP FP
    #   AP = 1/3 * 1 + 1/3 * 2/3 = 5/9.
    m = detection_map(MAP_GT, MAP_PRED)
    assert m["thresholds"] == [0.3, 0.4, 0.5, 0.6, 0.7]
    assert set(m["per_class"]) == {"negative", "positive"}
    neg = m["per_class"]["negative"]
    for k in ("0.3", "0.4", "0.5", "0.6"):
        assert neg[k] == pytest.approx(34 / 45)
    assert neg["0.7"] == pytest.approx(5 / 9)
    assert all(v == 0.0 for v in m["per_class"]["positive"].values())
    # mAP = (AP_negative + 0) / 2; average over 5 thresholds = (4 * 17/45 + 5/18) / 5 = 161/450.
    assert m["mean"]["0.5"] == pytest.approx(17 / 45) and m["at_0.5"] == pytest.approx(17 / 45)
    assert m["mean"]["0.7"] == pytest.approx(5 / 18)
    assert m["average"] == pytest.approx(161 / 450)


def test_detection_scores_decide_order_and_file_order_breaks_ties():
    gt = [iv(0, 9)]
    miss, hit = iv(50, 59), iv(0, 9)
    # Hit ranked first: P 1 at R 1 -> AP 1.
    assert detection_map(gt, [iv(50, 59, score=0.2), iv(0, 9, score=0.9)])["at_0.5"] == 1.0
    # Miss ranked first: P 0 then 1/2 at R 1 -> envelope 1/2 -> AP 1/2.
    assert detection_map(gt, [iv(50, 59, score=0.9), iv(0, 9, score=0.2)])["at_0.5"] == 0.5
    # No scores (all 1.0): file order decides.
    assert detection_map(gt, [miss, hit])["at_0.5"] == 0.5
    assert detection_map(gt, [hit, miss])["at_0.5"] == 1.0


def test_detection_takes_the_unmatched_truth_with_highest_iou():
    gt = [iv(0, 9), iv(5, 14)]  # A, B
    # p1 = [5,14]: IoU with A 5/15 = 0.33, with B 1 -> takes B, not the first-listed A.
    # p2 = [0,8]: IoU with A 9/10, with B 4/15 = 0.27 -> takes A. Both TP at 0.3 -> AP 1.
    # (Had p1 taken A, p2 would miss at 0.3 and AP would be 1/2.)
    pred = [iv(5, 14, score=0.9), iv(0, 8, score=0.8)]
    assert detection_map(gt, pred, thresholds=[0.3])["per_class"]["negative"]["0.3"] == 1.0


# ---------------------------------------------------------------- invariance (hypothesis)


@st.composite
def datasets(draw):
    n_videos = draw(st.integers(1, 5))
    gt, pred = [], []
    for v in range(n_videos):
        subject, video = f"s{v % 2}", f"v{v}"
        for _ in range(draw(st.integers(0, 4))):
            onset = draw(st.integers(0, 40))
            gt.append(dict(subject=subject, video=video, onset=onset, offset=onset + draw(st.integers(0, 12)),
                           type=draw(st.sampled_from(["micro", "macro"])),
                           emotion=draw(st.sampled_from(["negative", "positive", "surprise"]))))
        for _ in range(draw(st.integers(0, 5))):
            onset = draw(st.integers(0, 40))
            pred.append(dict(subject=subject, video=video, onset=onset, offset=onset + draw(st.integers(0, 12)),
                             type=draw(st.sampled_from(["micro", "macro"])),
                             emotion=draw(st.sampled_from(["negative", "positive", "surprise"]))))
    # Distinct scores: with ties the ranking follows file order, which the shuffle changes.
    scores = draw(st.permutations(range(len(pred))))
    for p, s in zip(pred, scores):
        p["score"] = float(s)
    return gt, pred, draw(st.randoms(use_true_random=False))


def _shuffled_and_renamed(rows, order, names):
    """Rows regrouped video by video in ``order`` (row order within a video kept), subjects renamed."""
    return [Interval(**{**r, "subject": names[r["subject"]]})
            for key in order for r in rows if (r["subject"], r["video"]) == key]


@settings(max_examples=200, deadline=None)
@given(datasets())
def test_video_order_and_subject_names_do_not_change_any_number(data):
    gt_rows, pred_rows, rnd = data
    original = evaluate([Interval(**r) for r in gt_rows], [Interval(**r) for r in pred_rows])
    keys = sorted({(r["subject"], r["video"]) for r in gt_rows + pred_rows})
    rnd.shuffle(keys)
    names = {s: f"subject_{rnd.randrange(10**6)}_{s}" for s in ("s0", "s1")}
    changed = evaluate(_shuffled_and_renamed(gt_rows, keys, names), _shuffled_and_renamed(pred_rows, keys, names))
    assert changed == original


# ---------------------------------------------------------------- CSV files and the CLI


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_read_csv_normalises_and_keeps_strings(tmp_path):
    path = _write(tmp_path / "gt.csv", [
        "Subject,video,onset,offset,type,emotion,notes",
        "0101,EP02_01,10,20,Micro-Expression,Negative,x",
        "",
        "0101,EP02_01,30,40,MACRO,positive,y",
    ])
    rows = read_intervals_csv(path)
    assert rows == [Interval("0101", "EP02_01", 10, 20, "micro", "negative"),
                    Interval("0101", "EP02_01", 30, 40, "macro", "positive")]
    assert rows[0].score == 1.0


def test_write_then_read_round_trips(tmp_path):
    rows = [Interval("007", "a b", 1, 5, "micro", "negative", 0.1 + 0.2),
            Interval("007", 'quote"d,comma', 3, 3, "macro", "", 2.0)]
    path = tmp_path / "out" / "pred.csv"
    write_intervals_csv(path, rows)
    assert read_intervals_csv(path, require_score=True) == rows
    assert [p.name for p in path.parent.iterdir()] == ["pred.csv"]  # no temporary file left behind


@pytest.mark.parametrize("lines, message", [
    ([], "empty file"),
    (["subject,video,onset,type,emotion", "s,v,1,micro,neg"], "missing column(s) offset; required: " + HEADER),
    ([HEADER, "s,v,1,5,micro,neg", "s,v,x1,5,micro,neg"], "line 3, column 'onset': 'x1' is not an integer"),
    ([HEADER, "s,v,1.5,5,micro,neg"], "line 2, column 'onset': '1.5' is not an integer"),
    ([HEADER, "s,v,9,5,micro,neg"], "line 2, columns 'onset'/'offset': onset 9 > offset 5"),
    ([HEADER, "s,v,1,5,mikro,neg"], "line 2, column 'type': unknown value 'mikro' (allowed, any case: micro,"),
    ([HEADER + ",score", "s,v,1,5,micro,neg,high"], "line 2, column 'score': 'high' is not a finite number"),
    ([HEADER + ",score", "s,v,1,5,micro,neg,nan"], "line 2, column 'score': 'nan' is not a finite number"),
    ([HEADER, "s,v,1,5,micro"], "line 2, column 'emotion': missing (the row has 5 fields)"),
    ([HEADER, ",v,1,5,micro,neg"], "line 2, column 'subject': empty"),
])
def test_bad_csv_names_file_line_and_column(tmp_path, lines, message):
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines))
    with pytest.raises(UserError) as err:
        read_intervals_csv(path)
    assert str(err.value).startswith(str(path))
    assert message in str(err.value)


def test_missing_file_and_required_score(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        read_intervals_csv(tmp_path / "nope.csv")
    path = _write(tmp_path / "p.csv", [HEADER, "s,v,1,5,micro,neg"])
    with pytest.raises(UserError, match="missing column.s. score"):
        read_intervals_csv(path, require_score=True)


def _csv_lines(intervals, score):
    return [HEADER + (",score" if score else "")] + [
        f"{x.subject},{x.video},{x.onset},{x.offset},{x.type},{x.emotion}" + (f",{x.score}" if score else "")
        for x in intervals]


def test_cli_json(tmp_path, capsys):
    gt = _write(tmp_path / "gt.csv", _csv_lines(STRS_GT, score=False))
    pred = _write(tmp_path / "pred.csv", _csv_lines(STRS_PRED, score=False))
    assert cli.main(["evaluate", "--gt", gt, "--pred", pred, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"scoring", "spotting", "analysis_f1", "strs", "map", "notes"}
    assert out["scoring"] == "definition" and out["notes"] == []
    assert set(out["spotting"]) == {"micro", "macro", "overall"}
    for block in out["spotting"].values():
        assert set(block) == {"tp", "fp", "fn", "precision", "recall", "f1"}
    assert set(out["map"]) == {"thresholds", "mean", "average", "at_0.5", "per_class"}
    assert list(out["map"]["mean"]) == ["0.3", "0.4", "0.5", "0.6", "0.7"]
    # micro: truths [0,9] neg, [40,49] pos, [80,89] sur; preds [0,9], [40,49], [100,109]: TP 2, FP 1, FN 1.
    # macro: truths [20,29], [60,69]; preds the same two: TP 2, FP 0, FN 0.
    assert counts(out["spotting"]["micro"]) == (2, 1, 1)
    assert counts(out["spotting"]["macro"]) == (2, 0, 0)
    assert out["spotting"]["overall"]["f1"] == pytest.approx(0.8)
    assert out["analysis_f1"] == pytest.approx(0.4) and out["strs"] == pytest.approx(0.32)
    # Detection per class (no scores: file order). negative truths [0,9], [20,29]; negative
    # predictions in order [0,9] TP, [60,69] FP (its truth is surprise), [100,109] FP:
    # AP = 1/2 * 1 = 0.5. positive truth [40,49]; predictions [20,29] FP, [40,49] TP: AP = 1 * 1/2.
    # surprise: 2 truths, no predictions: AP 0. mAP = (0.5 + 0.5 + 0) / 3 = 1/3 at every tIoU.
    assert out["map"]["per_class"]["negative"]["0.5"] == pytest.approx(0.5)
    assert out["map"]["per_class"]["positive"]["0.7"] == pytest.approx(0.5)
    assert out["map"]["at_0.5"] == pytest.approx(1 / 3) and out["map"]["average"] == pytest.approx(1 / 3)
    # Explicit classes and the table output.
    assert cli.main(["evaluate", "--gt", gt, "--pred", pred, "--classes", "negative,positive"]) == 0
    table = capsys.readouterr().out
    assert "STRS         0.60000" in table  # 0.8 * 0.75
    assert "overall" in table and "mAP" in table


def test_cli_empty_prediction_file(tmp_path, capsys):
    gt = _write(tmp_path / "gt.csv", _csv_lines(STRS_GT, score=False))
    pred = _write(tmp_path / "pred.csv", [HEADER])
    assert cli.main(["evaluate", "--gt", gt, "--pred", pred, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert counts(out["spotting"]["overall"]) == (0, 0, 5)
    assert out["spotting"]["overall"]["f1"] == 0.0 and out["strs"] == 0.0 and out["map"]["average"] == 0.0


@pytest.mark.parametrize("case", ["missing_file", "missing_column", "bad_type", "bad_iou"])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, case):
    gt = _write(tmp_path / "gt.csv", [HEADER, "s,v,1,5,micro,neg"])
    pred = _write(tmp_path / "pred.csv", [HEADER, "s,v,1,5,micro,neg", "s,v,7,9,micro,neg"])
    extra = []
    if case == "missing_file":
        pred, expected = str(tmp_path / "nope.csv"), f"{tmp_path / 'nope.csv'}: file not found"
    elif case == "missing_column":
        pred = _write(tmp_path / "pred.csv", ["subject,video,onset,type,emotion", "s,v,1,micro,neg"])
        expected = f"{pred}: missing column(s) offset; required: {HEADER}"
    elif case == "bad_type":
        pred = _write(tmp_path / "pred.csv", [HEADER, "s,v,1,5,micro,neg", "s,v,7,9,meso,neg"])
        expected = f"{pred}, line 3, column 'type': unknown value 'meso'"
    else:
        extra, expected = ["--iou", "1.5"], "--iou: expected a number in (0, 1], got '1.5'"
    assert cli.main(["evaluate", "--gt", gt, "--pred", pred, *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert "\n" not in err
    assert err.startswith("visionattn evaluate: error: ") and expected in err


# ---------------------------------------------------------------- the field's layouts

OFFICIAL_HEADER = "subject,video,onset,offset,emotion"


def test_official_layout_has_no_type_and_gives_overall_only(tmp_path, capsys):
    # The official STRS layout: no type column. Untyped intervals match across types.
    gt = _write(tmp_path / "gt.csv", [OFFICIAL_HEADER, "1,EP01,10,20,negative", "1,EP01,40,60,positive"])
    pred = _write(tmp_path / "pred.csv", [OFFICIAL_HEADER, "1,EP01,10,20,negative", "1,EP01,41,60,negative",
                                          "1,EP01,90,99,others"])
    rows = read_intervals_csv(pred)
    assert [r.type for r in rows] == ["", "", ""] and rows[1].onset == 41
    # [41,60] vs [40,60]: inter 20, union 21 -> match. TP 2, FP 1, FN 0: P 2/3, R 1, F1 4/5.
    # Pairs (neg, neg), (pos, neg): negative P 1/2 R 1; positive P 0 R 0 -> Pbar 1/4, Rbar 1/2,
    # F1 = 2 * (1/8) / (3/4) = 1/3. STRS = 4/5 * 1/3 = 4/15.
    assert cli.main(["evaluate", "--gt", gt, "--pred", pred, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out["spotting"]) == ["overall"]
    assert counts(out["spotting"]["overall"]) == (2, 1, 0)
    assert out["analysis_f1"] == pytest.approx(1 / 3) and out["strs"] == pytest.approx(4 / 15)
    assert any("per-type rows need a `type` column" in n for n in out["notes"])
    assert cli.main(["evaluate", "--gt", gt, "--pred", pred]) == 0
    table = capsys.readouterr().out
    assert "per-type rows need a `type` column (missing in the ground truth and the predictions)" in table
    assert "STRS         0.26667" in table and "micro" not in table


def test_typed_ground_truth_with_untyped_predictions(tmp_path):
    # Our ground truth (with type) against official-layout predictions: one matching over both types.
    gt = [iv(0, 9, "micro"), iv(20, 40, "macro")]
    pred = [Interval("s1", "v1", 0, 9, ""), Interval("s1", "v1", 20, 40, "")]
    s = spotting_scores(gt, pred)
    assert list(s) == ["overall"] and counts(s["overall"]) == (2, 0, 0)
    assert "missing in the predictions" in evaluate(gt, pred)["notes"][0]


# GT and predictions where both departures of the official script change the result.
DEPARTURE_GT = [OFFICIAL_HEADER,
                "1,A,0,9,negative",     # T1
                "1,A,2,11,negative",    # T2 overlaps T1
                "1,D,20,29,positive",   # T4
                "2,C,0,9,surprise"]     # T3: subject 2 has no prediction at all
DEPARTURE_PRED = [OFFICIAL_HEADER,
                  "1,A,1,10,negative",   # P1: IoU 9/11 with T1 and with T2
                  "1,B,0,5,positive",    # P2: video B has no ground truth
                  "1,D,20,29,negative"]  # P3: T4 exactly, wrong emotion


def test_official_script_departures_hand_computed(tmp_path, capsys):
    gt = _write(tmp_path / "gt.csv", DEPARTURE_GT)
    pred = _write(tmp_path / "pred.csv", DEPARTURE_PRED)
    # Definition: P1 takes T1 only (one-to-one), T2 is missed; P2 is a false positive; T3 missed.
    #   TP 2, FP 1, FN 2 -> P 2/3, R 1/2, F1 = (2/3) / (7/6) = 4/7.
    #   Pairs (neg, neg), (pos, neg); classes negative, positive, surprise:
    #   negative P 1/2 R 1; positive P 0 R 0; surprise 0, 0 -> Pbar 1/6, Rbar 1/3,
    #   F1 = 2 * (1/18) / (1/2) = 2/9. STRS = 4/7 * 2/9 = 8/63.
    assert cli.main(["evaluate", "--gt", gt, "--pred", pred, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["scoring"] == "definition"
    assert counts(d["spotting"]["overall"]) == (2, 1, 2)
    assert d["spotting"]["overall"]["f1"] == pytest.approx(4 / 7)
    assert d["analysis_f1"] == pytest.approx(2 / 9) and d["strs"] == pytest.approx(8 / 63)
    # Official script: P1 takes T1 and T2 (two TPs), P2 is ignored (no GT in video B), T3 is
    # ignored (subject 2 has no prediction). TP 3, FP 0, FN 0 -> F1 1.
    #   Pairs (neg, neg), (neg, neg), (pos, neg): negative TP 2, FP 1 -> P 2/3, R 1;
    #   positive P 0 R 0; surprise 0, 0 -> Pbar 2/9, Rbar 1/3, F1 = (4/27) / (5/9) = 4/15.
    assert cli.main(["evaluate", "--gt", gt, "--pred", pred, "--json", "--official-script"]) == 0
    o = json.loads(capsys.readouterr().out)
    assert o["scoring"] == "official-script" and list(o["spotting"]) == ["overall"]
    assert counts(o["spotting"]["overall"]) == (3, 0, 0)
    assert o["analysis_f1"] == pytest.approx(4 / 15) and o["strs"] == pytest.approx(4 / 15)
    notes = " | ".join(o["notes"])
    assert "1 prediction(s) in videos without ground truth ignored" in notes
    assert "1 truth(s) of subjects without any prediction ignored" in notes
    assert "1 prediction(s) matched more than one truth" in notes
    assert d["map"] == o["map"]  # mAP is not part of the official script


def test_official_script_agrees_with_definition_without_the_departures(tmp_path):
    # One truth and one prediction per video, every subject predicted: the two must agree.
    gt = [iv(0, 9, "micro", "negative", video="a"), iv(0, 9, "micro", "positive", video="b"),
          iv(5, 20, "macro", "others", video="c", subject="s2")]
    pred = [iv(1, 9, "micro", "negative", video="a"), iv(30, 39, "micro", "positive", video="b"),
            iv(5, 19, "macro", "negative", video="c", subject="s2")]
    d, o = evaluate(gt, pred), evaluate(gt, pred, official=True)
    # TP 2 (a, c), FP 1, FN 1 -> F1 2/3. Pairs (neg, neg), (others, neg): classes neg, others, pos:
    # negative P 1/2 R 1; others 0 0; positive 0 0 -> Pbar 1/6, Rbar 1/3 -> F1 2/9.
    assert o["spotting"]["overall"] == d["spotting"]["overall"]
    assert d["spotting"]["overall"]["f1"] == pytest.approx(2 / 3)
    assert d["analysis_f1"] == o["analysis_f1"] == pytest.approx(2 / 9)
    assert d["strs"] == pytest.approx(o["strs"])


def test_official_script_unlabelled_truths_make_a_class():
    gt = [iv(0, 9, emotion="negative", video="a"), iv(0, 9, emotion="", video="b")]
    pred = [iv(0, 9, emotion="negative", video="a"), iv(0, 9, emotion="negative", video="b")]
    # Definition: the unlabelled truth is no class and its pair is dropped: negative P 1 R 1 -> 1.
    assert evaluate(gt, pred)["analysis_f1"] == pytest.approx(1.0)
    # Script: classes {negative, no emotion}; the pair (none, negative) is kept and is an FP of
    # negative: P 1/2, R 1; "no emotion" scores 0 -> Pbar 1/4, Rbar 1/2 -> F1 = (1/4) / (3/4) = 1/3.
    o = evaluate(gt, pred, official=True)
    assert o["analysis_f1"] == pytest.approx(1 / 3)
    assert any("truths without an emotion" in n for n in o["notes"])


def test_official_script_all_pairs_right_in_one_class_scores_zero():
    gt = [iv(0, 9, emotion="negative", video="a"), iv(0, 9, emotion="negative", video="b")]
    pred = list(gt)
    assert evaluate(gt, pred)["analysis_f1"] == 1.0
    o = evaluate(gt, pred, official=True)
    # Every analysed pair is (negative, negative): the script's confusion matrix is 1x1, read as 0.
    assert o["analysis_f1"] == 0.0 and o["spotting"]["overall"]["f1"] == 1.0
    assert any("scored 0 because every analysed pair was right" in n for n in o["notes"])


def test_megc_submission_rows_map_vid_to_ground_truth_videos(tmp_path, capsys):
    gt = _write(tmp_path / "gt.csv", [HEADER + ",apex",
                                      "006,1,100,199,macro,,150",   # SAMM-LV: folder / vid 006_1
                                      "006,1,500,520,micro,,510",
                                      "s15,0101,10,19,micro,negative,15"])
    pred = _write(tmp_path / "pred.csv", ["vid,pred_onset,pred_offset,type",
                                          "006_1,100,199,macro",
                                          "006_1,500,520,mae",        # right frames, wrong type
                                          "S15_0101,10,19,micro",     # case differs
                                          "007_2,1,10,micro"])        # no such video
    rows = read_intervals_csv(pred, videos={x.key for x in read_intervals_csv(gt)})
    assert [r.key for r in rows] == [("006", "1"), ("006", "1"), ("s15", "0101"), ("007", "2")]
    assert [r.type for r in rows] == ["macro", "macro", "micro", "micro"] and rows[0].emotion == ""
    # micro: TP 1 (s15), FP 1 (007_2), FN 1 ([500,520]); macro: TP 1, FP 1 (the mae row), FN 0.
    # overall TP 2, FP 2, FN 1 -> P 1/2, R 2/3, F1 4/7. No predicted emotion: STRS 0.
    assert cli.main(["evaluate", "--gt", gt, "--pred", pred, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert counts(d["spotting"]["micro"]) == (1, 1, 1) and counts(d["spotting"]["macro"]) == (1, 1, 0)
    assert d["spotting"]["overall"]["f1"] == pytest.approx(4 / 7) and d["strs"] == 0.0
    assert any("predictions carry no emotion" in n for n in d["notes"])
    # Official script: types ignored, 007_2 ignored: TP 3, FP 0, FN 0.
    assert cli.main(["evaluate", "--gt", gt, "--pred", pred, "--json", "--official-script"]) == 0
    assert counts(json.loads(capsys.readouterr().out)["spotting"]["overall"]) == (3, 0, 0)


def test_megc_layout_without_ground_truth_splits_vid_and_names_missing_columns(tmp_path):
    path = _write(tmp_path / "p.csv", ["vid,pred_onset,pred_offset,type", "spNO.1_a,5,9,micro"])
    assert read_intervals_csv(path)[0].key == ("spNO.1", "a")
    bad = _write(tmp_path / "bad.csv", ["vid,pred_onset,type", "x_1,5,micro"])
    with pytest.raises(UserError, match="missing column.s. pred_offset; MEGC layout: vid,pred_onset,pred_offset,type"):
        read_intervals_csv(bad)


def test_untyped_intervals_round_trip_without_a_type_column(tmp_path):
    rows = [Interval("1", "EP01", 3, 9, "", "happiness", 0.5)]
    path = tmp_path / "u.csv"
    write_intervals_csv(path, rows)
    assert path.read_text().splitlines()[0] == "subject,video,onset,offset,emotion,score"
    assert read_intervals_csv(path) == rows
