"""SAMM-LV reader on a replica of the real workbook, and its frame folders.

The replica follows shared/reference/fedn.md ("Datasets"), written with openpyxl: sheet
FACS_Movement_Only, 9 rows of title and notes, the header in row 10 (Subject, Filename,
Inducement Code, Onset, Apex, Offset, Duration, Type, Action Units, Notes), subjects as
numbers (6) while folders are zero-padded (006), decimal frame numbers, apex -1, onset 0,
types `Macro` and `Micro - 1/2`. Expected values are worked out by hand in the comments.
"""
import cv2
import numpy as np
import openpyxl
import pytest

from visionattn.data.annotations import ANNOTATION_COLUMNS
from visionattn.data.datasets import attach_sources, load_annotations, load_table
from visionattn.utils import UserError

HEADER = ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type", "Action Units",
          "Notes"]
ROWS = [
    # Excel row 11 on
    [6, "006_1_1", 1, 566.4, 580, 601.6, 35.2, "Macro", "R12", None],          # decimals: 566, 602
    [6, "006_1_2", 1, 1200, -1, 1300, 100, "Macro", "4+7", "apex not coded"],  # apex -1 -> 1250
    [6, "006_2_1", 2, 0, 150, 700, 700, "Macro", "12", None],                  # onset 0
    [6, "006_2_2", 2, 2001, 2004, 2010.5, 9.5, "Micro - 1/2", "R14", None],   # offset 2011
    [11, "011_3_1", 3, 50, 55.5, 60, 10, "Micro - 1/2", "4", None],            # apex 55.5 -> 56
    [11, "011_3_2", 3, 0, -1, 300, 300, "Macro", "1+2", None],                 # onset 0 and apex -1
]


def title_rows():
    """Rows 1-9: a title, notes and blank lines."""
    return [["SAMM Long Videos - FACS Movement Only"], [], ["Coded by certified FACS coders"],
            ["Onset/Offset in frames at 200 fps"], [], ["Notes:"], ["-1 means not coded"], [], []]


def write_samm(folder, rows=ROWS, name="SAMM_LongVideos_V3_Release.xlsx", sheet="FACS_Movement_Only"):
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = sheet
    for row in title_rows() + [HEADER] + rows:
        ws.append(row)
    path = folder / name
    book.save(path)
    return path


def test_samm_workbook_alone_default_policy(tmp_path):
    t = load_annotations("samm", write_samm(tmp_path))
    assert list(t.columns) == list(ANNOTATION_COLUMNS)
    # onset-0 rows (rows 13 and 16) dropped by default.
    assert t["subject"].tolist() == ["006", "006", "006", "011"]
    assert t["video"].tolist() == ["1", "1", "2", "3"]
    assert t["onset"].tolist() == [566, 1200, 2001, 50]   # 566.4 rounded down
    assert t["offset"].tolist() == [602, 1300, 2011, 60]  # 601.6 and 2010.5 rounded up
    assert t["apex"].tolist() == [580, 1250, 2004, 56]    # -1 -> (1200 + 1300) // 2; 55.5 -> 56
    assert t["type"].tolist() == ["macro", "macro", "micro", "micro"]
    assert (t["emotion"] == "").all() and (t["fps"] == 200.0).all()
    assert t["aus"].tolist() == ["R12", "4+7", "R14", "4"]
    assert t["row"].tolist()[0].endswith("sheet 'FACS_Movement_Only', row 11")
    assert t["row"].tolist()[3].endswith("row 15")
    assert t.attrs["quirks"] == {
        "decimal frame numbers: onset rounded down, offset up, apex to nearest": 3,
        "apex -1 (not annotated): set to the middle of the interval, (onset + offset) // 2": 1,
        "onset 0: row dropped (onset_zero='drop', as the published baselines)": 2,
    }


def test_samm_keep_onset_zero(tmp_path):
    t = load_annotations("samm", write_samm(tmp_path), onset_zero="keep")
    assert len(t) == 6 and t["onset"].tolist()[2] == 0 and t["onset"].tolist()[5] == 0
    assert t["apex"].tolist()[5] == 150  # (0 + 300) // 2
    q = t.attrs["quirks"]
    assert q["onset 0: kept as written (onset_zero='keep')"] == 2
    assert q["apex -1 (not annotated): set to the middle of the interval, (onset + offset) // 2"] == 2
    # 2 subjects, 3 videos (006_1, 006_2, 011_3), 4 macro + 2 micro.
    assert t["subject"].nunique() == 2 and len(t[["subject", "video"]].drop_duplicates()) == 3
    assert (t["type"] == "macro").sum() == 4


def test_samm_megc_copy_found_in_folder(tmp_path):
    write_samm(tmp_path, name="SAMMLV_gt.xlsx")
    assert len(load_annotations("samm", tmp_path)) == 4


@pytest.mark.parametrize("bad,match", [
    ([6, "0061", 1, 5, 6, 9, 4, "Macro", "4", None], r"row 17: filename '0061' is not <subject>_<video>_<occurrence>"),
    ([6, "006_1_3", 1, 5, 6, 9, 4, "Meso", "4", None], r"row 17: type 'Meso' is neither Macro nor Micro"),
])
def test_samm_row_outside_the_layout_names_workbook_sheet_row(tmp_path, bad, match):
    path = write_samm(tmp_path, ROWS + [bad])
    with pytest.raises(UserError, match=match) as err:
        load_annotations("samm", path)
    assert str(err.value).startswith(f"{path}, sheet 'FACS_Movement_Only', row 17")


@pytest.mark.parametrize("onset,apex,offset,problem", [
    ("abc", 5, 9, "onset 'abc' is not a number"),
    (5, 6, None, "offset is missing"),
    (50, 60, 40, "onset 50 is after offset 40"),
    (50, 45.5, 40.2, "onset 50 is after apex 46 and offset 41"),  # the decimals rounded as documented
    (10, 45, 40, "apex 45 is outside onset 10 .. offset 40"),
])
def test_samm_malformed_row_dropped_and_reported_or_refused(tmp_path, onset, apex, offset, problem):
    path = write_samm(tmp_path, ROWS + [[6, "006_1_3", 1, onset, apex, offset, 4, "Macro", "4", None]])
    t = load_annotations("samm", path)
    assert len(t) == 4  # as without the row: the bad row 17 dropped, the documented policies unchanged
    assert t["apex"].tolist() == [580, 1250, 2004, 56]
    shown = f"filename 006_1_3, onset {onset}, apex {apex}, offset {'(empty)' if offset is None else offset}"
    assert t.attrs["quirks"][f"malformed row dropped: sheet 'FACS_Movement_Only', row 17 ({shown}): {problem}"] == 1
    assert t.attrs["quirks"]["onset 0: row dropped (onset_zero='drop', as the published baselines)"] == 2
    with pytest.raises(UserError) as err:
        load_annotations("samm", path, strict=True)
    assert str(err.value).startswith(f"{path}, sheet 'FACS_Movement_Only', row 17: {problem} ({shown})")


def test_samm_without_header_or_sheet(tmp_path):
    book = openpyxl.Workbook()
    book.active.title = "FACS_Movement_Only"
    book.active.append(["Subject", "Onset"])
    book.save(tmp_path / "x.xlsx")
    with pytest.raises(UserError, match=r"no header row with the columns subject, filename, onset"):
        load_annotations("samm", tmp_path / "x.xlsx")
    book.create_sheet("Other")
    book.save(tmp_path / "y.xlsx")
    wb = openpyxl.load_workbook(tmp_path / "y.xlsx")
    wb["FACS_Movement_Only"].title = "Sheet1"
    wb.save(tmp_path / "y.xlsx")
    with pytest.raises(UserError, match=r"sheet 'FACS_Movement_Only' not found"):
        load_annotations("samm", tmp_path / "y.xlsx")


def touch(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    jpg = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    for n in names:
        (folder / n).write_bytes(jpg)


def test_samm_frames(tmp_path):
    write_samm(tmp_path)
    frames = tmp_path / "SAMM_longvideos"
    for vid, n in (("006_1", 30), ("006_2", 20), ("011_3", 10)):
        touch(frames / vid, [f"{vid}_{i:04d}.jpg" for i in range(1, n + 1)])
    t = load_table("samm", tmp_path)
    assert t["source"].tolist()[0].endswith("SAMM_longvideos/006_1")
    assert t["n_frames"].tolist() == [30, 30, 20, 10] and (t["first_frame"] == 1).all()
    assert (t["fps"] == 200.0).all()
    import shutil

    shutil.rmtree(frames / "011_3")
    with pytest.raises(UserError, match=r"SAMM_longvideos/011_3: frame folder not found \(subject 011, video 3"):
        attach_sources(load_annotations("samm", tmp_path), "samm", frames)
