"""CAS(ME)^2 and CAS(ME)^3 readers on replicas of the real workbooks, and LOSO folds.

The replicas are written with openpyxl from the layout stated in
shared/reference/fedn.md ("Datasets"), never with the reader's code: CAS(ME)^2's three
header-less sheets (sheet 2 one row per expression: subject number, folder, subject index;
sheet 3 video codes stored as numbers), CAS(ME)^3's `label` sheet with its header, and each
documented quirk at least once. Expected values are worked out by hand in the comments.
"""
import cv2
import numpy as np
import openpyxl
import pandas as pd
import pytest

from visionattn.data.annotations import ANNOTATION_COLUMNS, COLUMNS, EMOTIONS4, EXPRESSION_TYPES, loso_folds, to_emotion4
from visionattn.data.datasets import attach_sources, load_annotations, load_table
from visionattn.utils import UserError

TINY_JPEG = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))[1].tobytes()


def touch_frames(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(TINY_JPEG)


def write_book(path, sheets):
    """sheets: [(name, rows)], rows written from row 1 on, no header unless the rows hold one."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets:
        ws = book.create_sheet(name)
        for row in rows:
            ws.append(list(row))
    book.save(path)
    return path


# --------------------------------------------------------------------------- CAS(ME)^2
# Subject folders s15 and s16 are subject INDEX 1 and 2 (numbers 15 and 16).
FOLDERS = {1: (15, "s15"), 2: (16, "s16")}
CASME2_ROWS = [
    # index, expression id, onset, apex, offset, AUs, expert emotion, type, self-report
    [1, "disgust1_1", 10, 20, 40, "4+10+14", "negative", "macro-expression", "disgust"],
    [1, "disgust1_2", 100, 104, 0, 12, "positive", "macro-expression", "happyiness"],  # offset 0; bare AU
    [1, "anger1_1", 50, 55, 60, "4", "others", "micro-expression", "anger"],
    None,                                                                              # a blank row
    [2, "disgust1_1", 5, 8, 12, "1+2", "surprise", "micro-expression", "surprise"],
    [2, "anger1_1", 30, 31, 0, "4+7", "negative", "macro-expression", "anger"],       # offset 0
]
CODES = [[101, "disgust1"], [401, "anger1"], [502, "happy1"]]  # codes are numbers in the workbook


def write_casme2(folder, rows=CASME2_ROWS, name="CAS(ME)^2code_final.xlsx", naming=None):
    rows = [r if r is not None else [] for r in rows]
    if naming is None:  # one row per expression row: number, folder, index
        naming = [[*FOLDERS[r[0]], r[0]] if r else [] for r in rows]
    return write_book(folder / name, [("CASFEcode_final", rows), ("naming rule1", naming), ("naming rule2", CODES)])


def test_casme2_workbook_alone_real_layout(tmp_path):
    t = load_annotations("casme2", write_casme2(tmp_path))
    assert list(t.columns) == list(ANNOTATION_COLUMNS)
    assert [str(d) for d in t.dtypes] == list(ANNOTATION_COLUMNS.values())
    # Index 1 -> s15 and 2 -> s16 come from naming rule1's column 3 -> column 2.
    assert t["subject"].tolist() == ["s15", "s15", "s15", "s16", "s16"]
    assert t["video"].tolist() == ["0101", "0101", "0401", "0101", "0401"]  # 101 zero-padded
    assert t["type"].tolist() == ["macro", "macro", "micro", "micro", "macro"]
    assert t["emotion"].tolist() == ["negative", "positive", "others", "surprise", "negative"]
    assert t["self_report"].tolist() == ["disgust", "happyiness", "anger", "surprise", "anger"]
    assert t["aus"].tolist() == ["4+10+14", "12", "4", "1+2", "4+7"]
    assert t["offset"].tolist() == [40, 104, 60, 12, 31]  # offset 0 -> apex (104, 31)
    assert (t["fps"] == 30.0).all()
    # Rows as Excel numbers them: the blank row 4 counts, so the s16 rows are rows 5 and 6.
    assert t["row"].str.endswith(("row 1", "row 2", "row 3", "row 5", "row 6")).all()
    assert "sheet 'CASFEcode_final', row 5" in t.loc[3, "row"]
    assert t.attrs["quirks"] == {"offset 0 (missing): set to the apex": 2}


def test_casme2_megc_copy_name_and_folder(tmp_path):
    write_casme2(tmp_path, name="CASME_sq_gt.xlsx")
    t = load_annotations("casme2", tmp_path)
    assert len(t) == 5 and t.attrs["workbooks"] == [str(tmp_path / "CASME_sq_gt.xlsx")]


@pytest.mark.parametrize("policy,offsets,note", [
    (20, [40, 124, 60, 12, 51], "offset 0 (missing): set to apex + 20"),
    ("drop", [40, 60, 12], "offset 0 (missing): row dropped"),
])
def test_casme2_missing_offset_policy(tmp_path, policy, offsets, note):
    t = load_annotations("casme2", write_casme2(tmp_path), missing_offset=policy)
    assert t["offset"].tolist() == offsets and t.attrs["quirks"] == {note: 2}


def test_casme2_missing_offset_error_names_row(tmp_path):
    with pytest.raises(UserError, match=r"sheet 'CASFEcode_final', row 2: offset is missing"):
        load_annotations("casme2", write_casme2(tmp_path), missing_offset="error")


@pytest.mark.parametrize("bad_row,match", [
    ([9, "disgust1_3", 10, 20, 40, "4", "negative", "macro-expression", "x"],
     r"row 7: subject index 9 is not in column 3 of sheet 'naming rule1'"),
    ([1, "happy3_1", 10, 20, 40, "4", "negative", "macro-expression", "x"], r"row 7: .* names video 'happy3'"),
    ([1, "disgust1_3", 10, 20, 40, "4", "negative", "giant-expression", "x"], r"row 7: expression type 'giant-expression'"),
])
def test_casme2_row_outside_the_layout_names_workbook_sheet_row(tmp_path, bad_row, match):
    rows = CASME2_ROWS + [bad_row]
    naming = [[*FOLDERS[r[0]], r[0]] if r else [] for r in CASME2_ROWS] + [[15, "s15", 1]]
    path = write_casme2(tmp_path, rows, naming=naming)
    with pytest.raises(UserError, match=match) as err:
        load_annotations("casme2", path)
    assert str(path) in str(err.value) and "sheet 'CASFEcode_final'" in str(err.value)


@pytest.mark.parametrize("onset,apex,offset,problem", [
    ("abc", 20, 40, "onset 'abc' is not a whole number"),
    (10, None, 40, "apex is missing"),
    (50, 60, 40, "onset 50 is after offset 40"),
    (50, 45, 40, "onset 50 is after apex 45 and offset 40"),
    (10, 45, 40, "apex 45 is outside onset 10 .. offset 40"),
    (10, 5, 40, "apex 5 is outside onset 10 .. offset 40"),
    (0, 5, 40, "onset 0 is not a frame number (they count from 1)"),
])
def test_casme2_malformed_row_dropped_and_reported_or_refused(tmp_path, onset, apex, offset, problem):
    bad = [1, "disgust1_3", onset, apex, offset, "4", "negative", "macro-expression", "x"]
    naming = [[*FOLDERS[r[0]], r[0]] if r else [] for r in CASME2_ROWS] + [[15, "s15", 1]]
    path = write_casme2(tmp_path, CASME2_ROWS + [bad], naming=naming)
    t = load_annotations("casme2", path)
    assert len(t) == 5  # the 5 good rows, the bad one (row 7) dropped
    shown = f"subject 1, expression disgust1_3, onset {onset}, apex {'(empty)' if apex is None else apex}, offset {offset}"
    assert t.attrs["quirks"] == {"offset 0 (missing): set to the apex": 2,
                                 f"malformed row dropped: sheet 'CASFEcode_final', row 7 ({shown}): {problem}": 1}
    with pytest.raises(UserError) as err:
        load_annotations("casme2", path, strict=True)
    assert str(err.value) == (f"{path}, sheet 'CASFEcode_final', row 7: {problem} ({shown}); "
                              "strict: malformed rows are refused")


def test_casme2_reading_column_1_as_the_index_would_fail(tmp_path):
    # The wrong picture of sheet 2 (index -> folder in columns 1 -> 2, two columns) is refused
    # with a message that names the sheet row and the fix, instead of a wrong subject map.
    naming = [[1, "s15"], [2, "s16"]]
    with pytest.raises(UserError, match=r"naming rule1', row 1: expected 3 columns .* run synth again"):
        load_annotations("casme2", write_casme2(tmp_path, naming=naming))
    # One index written with two folders is a contradiction, named with both rows.
    naming = [[15, "s15", 1], [15, "s15", 1], [16, "s16", 1]]
    with pytest.raises(UserError, match=r"naming rule1', row 3: subject index 1 is folder 's16' here but 's15' in row 1"):
        load_annotations("casme2", write_casme2(tmp_path, naming=naming))


def test_casme2_missing_workbook_and_sheets(tmp_path):
    with pytest.raises(UserError, match=r"no casme2 annotation workbook .*CASME_sq_gt.xlsx"):
        load_annotations("casme2", tmp_path)
    with pytest.raises(UserError, match="annotation workbook not found"):
        load_annotations("casme2", tmp_path / "nope.xlsx")
    path = write_book(tmp_path / "CAS(ME)^2code_final.xlsx", [("CASFEcode_final", [[1]])])
    with pytest.raises(UserError, match="expected 3 sheets"):
        load_annotations("casme2", path)


@pytest.fixture
def casme2_frames(tmp_path):
    write_casme2(tmp_path)
    raw = tmp_path / "rawpic"
    touch_frames(raw / "s15" / "15_0101disgustingteeth", [f"img{i}.jpg" for i in range(1, 201)])
    touch_frames(raw / "s15" / "15_0401girlcrashing", [f"img{i}.jpg" for i in range(1, 301)])
    touch_frames(raw / "s16" / "16_0101disgustingteeth", [f"img{i}.jpg" for i in range(1, 151)])
    touch_frames(raw / "s16" / "16_0401girlcrashing", [f"img{i}.jpg" for i in range(1, 101)])
    return tmp_path


def test_casme2_attach_frames(casme2_frames):
    t = load_table("casme2", casme2_frames)
    assert list(t.columns) == list(COLUMNS)
    assert [str(d) for d in t.dtypes] == list(COLUMNS.values())
    assert t["n_frames"].tolist() == [200, 200, 300, 150, 100]
    assert (t["first_frame"] == 1).all()
    assert t["source"].str.endswith(("15_0101disgustingteeth", "15_0401girlcrashing", "16_0101disgustingteeth",
                                     "16_0401girlcrashing")).all()
    assert t.attrs["quirks"] == {"offset 0 (missing): set to the apex": 2}
    # The old entry point still gives the same table.
    pd.testing.assert_frame_equal(load_table("casme2", casme2_frames), t)


def test_casme2_attach_reports_missing_folder_by_name(casme2_frames):
    import shutil

    shutil.rmtree(casme2_frames / "rawpic" / "s16" / "16_0401girlcrashing")
    table = load_annotations("casme2", casme2_frames)
    with pytest.raises(UserError, match=r"s16/16_0401\*: no frame folder or video file of that name "
                                        r"\(subject s16, video 0401: 1 expression\(s\), first at .*row 6\)"):
        attach_sources(table, "casme2", casme2_frames / "rawpic")
    shutil.rmtree(casme2_frames / "rawpic" / "s16")
    with pytest.raises(UserError, match=r"rawpic/s16: subject folder not found"):
        attach_sources(table, "casme2", casme2_frames / "rawpic")


# --------------------------------------------------------------------------- CAS(ME)^3
LABEL_HEADER = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
LABEL_ROWS = [
    ["spNO.1", "a", 120, 125, 130, "4", "I", "disgust"],
    ["spNO.1", "J", 400, 405, 411, "12", "II", "happy"],       # upper-case J ...
    ["spNO.1", "j", 500, 504, 0, "1+2", "III", "surprise"],    # ... beside j; offset 0
    ["spNO.1", "b", 10, 12, 15, "4+7", "IV", "Others"],        # Others beside others
    ["spNO.2", "a", 900, 903, 907, "15", "V", "others"],
    ["spNo.3", "c", 30, 33, 36, "4", "VI", "fear"],            # spNo spelling
    ["spNO.3", "c", 60, 62, 64, "4", "VII", "anger"],
    ["spNO.3", "m", 70, 71, 72, "4", "I", "sad"],
]


def write_casme3_labels(folder, rows=LABEL_ROWS, name="cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"):
    return write_book(folder / name, [("label", [LABEL_HEADER] + rows), ("Sheet1", [["x"]]), ("Sheet3", [])])


def test_casme3_micro_labels_alone(tmp_path):
    t = load_annotations("casme3", write_casme3_labels(tmp_path))
    assert len(t) == 8 and (t["type"] == "micro").all() and (t["dataset"] == "casme3a").all()
    assert t["subject"].tolist() == ["spNO.1"] * 4 + ["spNO.2", "spNO.3", "spNO.3", "spNO.3"]
    assert t["video"].tolist() == ["a", "j", "j", "b", "a", "c", "c", "m"]
    # 7 emotions -> 4 classes: disgust, fear, anger, sad negative; happy positive.
    assert t["emotion_raw"].tolist() == ["disgust", "happy", "surprise", "others", "others", "fear", "anger", "sad"]
    assert t["emotion"].tolist() == ["negative", "positive", "surprise", "others", "others", "negative", "negative",
                                     "negative"]
    assert t["offset"].tolist() == [130, 411, 504, 15, 907, 36, 64, 72]
    # 3 subjects; videos spNO.1 a, j, b; spNO.2 a; spNO.3 c, m -> 6.
    assert t["subject"].nunique() == 3 and len(t[["subject", "video"]].drop_duplicates()) == 6
    assert t["row"].tolist()[1].endswith("sheet 'label', row 3")
    assert t.attrs["quirks"] == {
        "filename in upper case (J beside j): lower-cased": 1,
        "offset 0 (missing): set to the apex": 1,
        "micro emotion capitalised (Others beside others): lower-cased": 1,
        "subject spelled otherwise than spNO.<n> (e.g. spNo.1): written spNO.<n>": 1,
    }


def test_casme3_all_expressions_with_micro_and_macro_labels(tmp_path):
    write_casme3_labels(tmp_path)
    # The all-expression workbook is an .xls as distributed; no .xls writer is installed, so
    # the replica is .xlsx with the same header (the reader takes either).
    header = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Expression type", "Objective class"]
    write_book(tmp_path / "CAS(ME)3_part_A_v2.xlsx", [("Sheet1", [header,
        ["spNO.1", "a", 120, 125, 130, "4", "Micro-expression", "I"],
        ["spNO.1", "a", 700, 720, 760, "6+12", "Macro-expression", "II"],
        ["spNO.1", "J", 400, 405, 411, "12", "Micro-expression", "II"],
        ["spNO.2", "a", 50, 55, 0, "4", "Macro-expression", "III"],
        ["spNO.2", "b", 80, 81, 82, "4", "Micro-expression", "III"],   # no label row
    ])])
    write_book(tmp_path / "cas(me)3_part_A_MaE_label_JpgIndex_v2_emotion.xlsx", [("label", [LABEL_HEADER,
        ["spNO.1", "a", 700, 720, 760, "6+12", "II", "happy"]])])
    t = load_annotations("casme3", tmp_path)
    assert t["type"].tolist() == ["micro", "macro", "micro", "macro", "micro"]
    assert t["emotion_raw"].tolist() == ["disgust", "happy", "happy", "", ""]
    assert t["emotion"].tolist() == ["negative", "positive", "positive", "", ""]
    assert t["video"].tolist() == ["a", "a", "j", "a", "b"] and t["offset"].tolist()[3] == 55
    q = t.attrs["quirks"]
    assert q["micro row without a matching row in the micro label workbook: no emotion"] == 1
    assert q["macro row without a matching row in the macro label workbook: no emotion"] == 1
    assert q["offset 0 (missing): set to the apex"] == 1 and q["filename in upper case (J beside j): lower-cased"] == 1


def test_casme3_frames_case_insensitive_numbered_from_anywhere(tmp_path):
    write_casme3_labels(tmp_path, LABEL_ROWS[:1] + LABEL_ROWS[5:7])
    part = tmp_path / "part_A"
    touch_frames(part / "spNO.1" / "a" / "color", ["7.jpg", "8.jpg", "9.jpg", "12.jpg", "200.jpg"])  # gaps
    touch_frames(part / "spNo.3" / "C", [f"{i}.jpg" for i in range(100, 400)])  # spNo, upper C, no color/
    t = load_table("casme3", tmp_path)
    assert t["subject"].tolist() == ["spNO.1", "spNO.3", "spNO.3"]  # one spelling, whatever the folder
    assert t["n_frames"].tolist() == [5, 300, 300] and t["first_frame"].tolist() == [7, 100, 100]
    assert t["source"].tolist()[0].endswith("spNO.1/a/color") and t["source"].tolist()[1].endswith("spNo.3/C")
    with pytest.raises(UserError, match=r"part_A/spNO.9: subject folder not found"):
        attach_sources(t.assign(subject="spNO.9"), "casme3", part)


def test_casme3_missing_label_sheet_and_column(tmp_path):
    path = write_book(tmp_path / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", [("Sheet1", [LABEL_HEADER])])
    with pytest.raises(UserError, match=r"sheet 'label' not found"):
        load_annotations("casme3", path)
    path = write_book(tmp_path / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
                      [("label", [LABEL_HEADER[:4] + LABEL_HEADER[5:], ["spNO.1", "a", 1, 2, "4", "I", "fear"]])])
    with pytest.raises(UserError, match=r"sheet 'label': no header row with the columns .*offset"):
        load_annotations("casme3", path)
    path = write_casme3_labels(tmp_path, [["spNO.1", "a", 1, "x", 3, "4", "I", "fear"]])
    with pytest.raises(UserError, match=r"sheet 'label', row 2: apex 'x' is not a whole number"):
        load_annotations("casme3", path, strict=True)
    with pytest.raises(UserError, match=r"no expression rows in sheet 'label'"):  # the only row dropped
        load_annotations("casme3", path)


def casme3_part_a_label_rows():
    """A replica of the real part A micro-expression sheet 'label' (fedn.md): 860 rows of 94
    subjects, and in Excel row 751 the malformed spNO.216 video d row (onset 3647, apex 2668,
    offset 2694: the onset typed with a wrong digit). The other rows are well formed."""
    subjects = [f"spNO.{n}" for n in range(1, 94)] + ["spNO.216"]
    rows = []
    for k in range(859):
        onset = 100 + 20 * k
        rows.append([subjects[k % 94], "abcdefghijklm"[k % 13], onset, onset + 4, onset + 9, "4", "I",
                     ("anger", "disgust", "fear", "sad", "happy", "surprise", "others")[k % 7]])
    rows.insert(751 - 2, ["spNO.216", "d", 3647, 2668, 2694, "4", "III", "disgust"])  # row 1 is the header
    return rows


def test_casme3_part_a_label_sheet_with_the_known_bad_row(tmp_path):
    rows = casme3_part_a_label_rows()
    assert len(rows) == 860 and len({r[0] for r in rows}) == 94
    path = write_casme3_labels(tmp_path, rows)
    t = load_annotations("casme3", path)
    assert len(t) == 859
    assert not ((t["subject"] == "spNO.216") & (t["onset"] == 3647)).any()
    assert t.attrs["quirks"] == {
        "malformed row dropped: sheet 'label', row 751 (subject spNO.216, video d, onset 3647, apex 2668, "
        "offset 2694): onset 3647 is after apex 2668 and offset 2694": 1}
    with pytest.raises(UserError, match=r"sheet 'label', row 751: onset 3647 is after apex 2668 and offset 2694"):
        load_annotations("casme3", path, strict=True)


# --------------------------------------------------------------------------- vocabularies, folds
def test_vocabularies_and_emotion_mapping():
    assert EXPRESSION_TYPES == ("micro", "macro")
    assert EMOTIONS4 == ("negative", "positive", "surprise", "others")
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
