"""Annotation loaders on hand-made workbooks with the real layouts' quirks, and LOSO folds."""
import os

import cv2
import numpy as np
import pandas as pd
import pytest

from visionattn.data.annotations import COLUMNS, loso_folds, to_emotion4
from visionattn.data.casme import load_casme2, load_casme3
from visionattn.utils import UserError


TINY_JPEG = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))[1].tobytes()


def touch_frames(folder, numbers, ext=".jpg"):
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        (folder / f"img{n}{ext}").write_bytes(TINY_JPEG)


def write_casme2(root, rows, subjects=((1, "s15"), (2, "s16")), codes=(("0101", "disgust1"), ("0401", "anger1"))):
    path = root / "CAS(ME)^2code_final.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as xw:
        pd.DataFrame(rows).to_excel(xw, sheet_name="Sheet1", header=False, index=False)
        pd.DataFrame(list(subjects)).to_excel(xw, sheet_name="naming rule1", header=False, index=False)
        pd.DataFrame(list(codes), dtype=str).to_excel(xw, sheet_name="naming rule2", header=False, index=False)
    return path


@pytest.fixture
def casme2(tmp_path):
    touch_frames(tmp_path / "rawpic" / "s15" / "15_0101disgustingteeth", range(1, 201))
    touch_frames(tmp_path / "rawpic" / "s15" / "15_0401girlcrashing", range(1, 301))
    touch_frames(tmp_path / "rawpic" / "s16" / "16_0101disgustingteeth", range(1, 151))
    rows = [
        [1, "disgust1_1", 10, 20, 40, "4+10", "negative", "macro-expression", "disgust"],
        [1, "disgust1_2", 100, 104, 0, "12", "positive", "macro-expression", "happiness"],  # offset missing
        [1, "anger1_1", 50, 55, 60, "4", "others", "micro-expression", "anger"],
        [2, "disgust1_1", 5, 8, 12, "1+2", "surprise", "Micro-expression", "surprise"],
    ]
    write_casme2(tmp_path, rows)
    return tmp_path, rows


def test_casme2_reads_real_layout(casme2):
    root, _ = casme2
    t = load_casme2(root)
    assert list(t.columns) == list(COLUMNS)
    assert [str(d) for d in t.dtypes] == list(COLUMNS.values())
    assert t["subject"].tolist() == ["s15", "s15", "s15", "s16"]
    assert t["video"].tolist() == ["0101", "0101", "0401", "0101"]
    assert t["type"].tolist() == ["macro", "macro", "micro", "micro"]
    assert t["emotion"].tolist() == ["negative", "positive", "others", "surprise"]
    assert t["self_report"].tolist() == ["disgust", "happiness", "anger", "surprise"]
    assert t["n_frames"].tolist() == [200, 200, 300, 150]
    assert (t["fps"] == 30.0).all() and (t["first_frame"] == 1).all()
    assert t.loc[1, "offset"] == 104  # default policy: offset := apex
    assert t["source"][2].endswith(os.path.join("s15", "15_0401girlcrashing"))
    assert "row 2" in t.loc[1, "row"]


@pytest.mark.parametrize("policy,expected", [(20, 124), ("drop", None)])
def test_casme2_missing_offset_policy(casme2, policy, expected):
    t = load_casme2(casme2[0], missing_offset=policy)
    row = t[(t["video"] == "0101") & (t["onset"] == 100)]
    assert (row["offset"].tolist() == [expected]) if expected else row.empty


def test_casme2_missing_offset_error_policy_names_row(casme2):
    with pytest.raises(UserError, match=r"sheet 'Sheet1', row 2: offset is missing"):
        load_casme2(casme2[0], missing_offset="error")


@pytest.mark.parametrize("bad_row,match", [
    ([1, "disgust1_3", "abc", 20, 40, "4", "negative", "macro-expression", "x"], r"row 5: onset 'abc' is not a whole number"),
    ([9, "disgust1_3", 10, 20, 40, "4", "negative", "macro-expression", "x"], r"row 5: subject index 9 is not in sheet 'naming rule1'"),
    ([1, "happy3_1", 10, 20, 40, "4", "negative", "macro-expression", "x"], r"row 5: .* names video 'happy3'"),
    ([1, "disgust1_3", 10, 20, 40, "4", "negative", "giant-expression", "x"], r"row 5: expression type 'giant-expression'"),
    ([1, "disgust1_3", 50, 60, 40, "4", "negative", "macro-expression", "x"], r"row 5: onset 50 / offset 40"),
])
def test_casme2_malformed_row_names_file_sheet_row(casme2, bad_row, match):
    root, rows = casme2
    path = write_casme2(root, rows + [bad_row])
    with pytest.raises(UserError, match=match) as err:
        load_casme2(root)
    assert str(path) in str(err.value) and "sheet 'Sheet1'" in str(err.value)


def test_casme2_missing_frame_folder_names_row(casme2):
    root, rows = casme2
    write_casme2(root, rows + [[2, "anger1_1", 1, 2, 3, "4", "negative", "macro-expression", "x"]])
    with pytest.raises(UserError, match=r"row 5: no frame folder or video named 16_0401\*"):
        load_casme2(root)


def test_casme2_missing_sheet_and_file(tmp_path):
    with pytest.raises(UserError, match="annotation workbook not found"):
        load_casme2(tmp_path)
    path = tmp_path / "CAS(ME)^2code_final.xlsx"
    pd.DataFrame([[1]]).to_excel(path, header=False, index=False)
    with pytest.raises(UserError, match="expected 3 sheets"):
        load_casme2(tmp_path)


def test_casme3_part_a_with_label_quirks(tmp_path):
    frames = tmp_path / "data" / "part_A"
    touch_frames(frames / "spNO.1" / "a" / "color", [7, 8, 9, 12, 13, 200], ext=".JPG")  # gaps, not from 1
    touch_frames(frames / "spNo.2" / "b" / "color", range(100, 400))  # folder case differs from workbook
    main = pd.DataFrame({
        "Subject": ["spNO.1", "spNO.1", "spNO.2"],
        "Filename": ["a", "a", "b"],
        "Onset": [7, 12, 150], "Apex": [8, 13, 160], "Offset": [9, 0, 170],
        "AU": ["4", "12", "1+2"],
        "Expression type": ["Micro-expression", "Macro-expression", "Micro-expression"],
        "Objective class": [1, 2, 3],
    })
    main.to_excel(tmp_path / "CAS(ME)3_part_A_v2.xlsx", index=False)
    labels = pd.DataFrame({
        "Subject": ["spNo.1", "spNO.2"], "Filename": ["a", "b"], "Onset": [7, 150], "Apex": [8, 160],
        "Offset": [9, 170], "AU": ["4", "1+2"], "Objective class": [1, 3], "emotion": ["disgust", "surprise"],
    })
    with pd.ExcelWriter(tmp_path / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx") as xw:
        labels.to_excel(xw, sheet_name="label", index=False)
    t = load_casme3(tmp_path, frames_root=frames)
    assert t["subject"].tolist() == ["spNO.1", "spNO.1", "spNo.2"]  # the folder's own spelling
    assert t["type"].tolist() == ["micro", "macro", "micro"]
    assert t["emotion_raw"].tolist() == ["disgust", "", "surprise"]
    assert t["emotion"].tolist() == ["negative", "", "surprise"]
    assert t["offset"].tolist() == [9, 13, 170]
    assert t["n_frames"].tolist() == [6, 6, 300] and t["first_frame"].tolist() == [7, 7, 100]


def test_casme3_missing_column_and_video_folder(tmp_path):
    pd.DataFrame({"Subject": ["spNO.1"], "Filename": ["a"], "Onset": [1]}).to_excel(
        tmp_path / "CAS(ME)3_part_A_v2.xlsx", index=False)
    with pytest.raises(UserError, match=r"column 'apex' not found"):
        load_casme3(tmp_path)
    pd.DataFrame({"Subject": ["spNO.1"], "Filename": ["a"], "Onset": [1], "Apex": [2], "Offset": [3], "AU": ["4"],
                  "Expression type": ["Macro-expression"]}).to_excel(tmp_path / "CAS(ME)3_part_A_v2.xlsx", index=False)
    with pytest.raises(UserError, match=r"row 2: subject folder .*spNO.1 not found"):
        load_casme3(tmp_path)


def test_emotion_mapping():
    assert [to_emotion4(e) for e in ["Anger", "disgust", "fear", "sad", "happy", "surprise", "others", "??"]] == \
        ["negative", "negative", "negative", "negative", "positive", "surprise", "others", ""]


def test_loso_folds_hold_out_each_subject_once_and_validate_on_training_subjects():
    table = pd.DataFrame({"subject": [f"s{i}" for i in range(6) for _ in range(2)]})
    folds = loso_folds(table, val_subjects=2, seed=3)
    assert sorted(f.test for f in folds) == [f"s{i}" for i in range(6)]
    for f in folds:
        assert f.test not in f.train and f.test not in f.val
        assert not set(f.train) & set(f.val) and len(f.val) == 2
        assert sorted((*f.train, *f.val, f.test)) == [f"s{i}" for i in range(6)]
    assert folds == loso_folds(table, val_subjects=2, seed=3)
    assert len({f.val for f in folds}) > 1  # not the same validation pair every time
