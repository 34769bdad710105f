"""`visionattn annotations`: official workbooks (replicas, see test_casme.py and test_samm.py)
-> the ground-truth CSV that `visionattn evaluate` reads, with the printed counts and quirks."""
import csv
import json

from test_casme import casme3_part_a_label_rows, write_casme2, write_casme3_labels
from test_samm import write_samm

from visionattn.cli import main
from visionattn.evaluation import read_intervals_csv


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_casme2_to_ground_truth_csv(tmp_path, capsys):
    out = tmp_path / "gt" / "casme2.csv"
    wb = write_casme2(tmp_path)
    assert main(["annotations", str(wb), "--dataset", "casme2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    # 5 rows: 3 macro, 2 micro; subjects s15, s16; videos s15/0101, s15/0401, s16/0101, s16/0401.
    assert printed.splitlines()[0] == f"casme2: 5 expressions (3 macro, 2 micro), 2 subjects, 4 videos -> {out}"
    assert "    offset 0 (missing): set to the apex: 2 rows" in printed
    rows = read_rows(out)
    assert list(rows[0]) == ["subject", "video", "onset", "apex", "offset", "type", "emotion", "emotion_raw", "aus"]
    assert rows[1] == {"subject": "s15", "video": "0101", "onset": "100", "apex": "104", "offset": "104",
                       "type": "macro", "emotion": "positive", "emotion_raw": "positive", "aus": "12"}
    # evaluate reads it as ground truth: scored against itself, everything matches.
    assert main(["evaluate", "--gt", str(out), "--pred", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["spotting"]["micro"]["f1"] == result["spotting"]["macro"]["f1"] == 1.0
    assert len(read_intervals_csv(out)) == 5


def test_samm_policies_and_counts(tmp_path, capsys):
    wb = write_samm(tmp_path)
    out = tmp_path / "samm.csv"
    assert main(["annotations", str(wb), "--dataset", "samm", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == f"samm: 4 expressions (2 macro, 2 micro), 2 subjects, 3 videos -> {out}"
    assert "onset 0: row dropped (onset_zero='drop', as the published baselines): 2 rows" in printed
    assert "decimal frame numbers: onset rounded down, offset up, apex to nearest: 3 rows" in printed
    assert "apex -1 (not annotated): set to the middle of the interval, (onset + offset) // 2: 1 row" in printed
    assert [r["subject"] + "_" + r["video"] for r in read_rows(out)] == ["006_1", "006_1", "006_2", "011_3"]
    assert main(["annotations", str(wb), "--dataset", "samm", "--out", str(out), "--onset-zero", "keep"]) == 0
    assert capsys.readouterr().out.startswith("samm: 6 expressions (4 macro, 2 micro), 2 subjects, 3 videos")
    assert len(read_rows(out)) == 6


def test_casme3_micro_labels_alone(tmp_path, capsys):
    wb = write_casme3_labels(tmp_path)
    out = tmp_path / "c3.csv"
    assert main(["annotations", str(wb), "--dataset", "casme3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == f"casme3: 8 expressions (0 macro, 8 micro), 3 subjects, 6 videos -> {out}"
    assert "filename in upper case (J beside j): lower-cased: 1 row" in printed
    assert "emotions: negative 4, positive 1, surprise 1, others 2" in printed
    assert {r["emotion"] for r in read_rows(out)} == {"negative", "others", "positive", "surprise"}


def test_errors_are_one_line_naming_workbook_sheet_row(tmp_path, capsys):
    bad = [[6, "0061", 1, 5, 6, 9, 4, "Macro", "4", None]]
    wb = write_samm(tmp_path, bad)
    out = tmp_path / "x.csv"
    assert main(["annotations", str(wb), "--dataset", "samm", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"visionattn annotations: error: {wb}, sheet 'FACS_Movement_Only', row 11: "
                   f"filename '0061' is not <subject>_<video>_<occurrence> (e.g. 006_1_3)")
    assert not out.exists()
    assert main(["annotations", str(wb), "--dataset", "casme2", "--out", str(out), "--onset-zero", "keep"]) == 2
    assert "--onset-zero applies to --dataset samm only" in capsys.readouterr().err
    assert main(["annotations", str(tmp_path / "none.xlsx"), "--dataset", "casme2", "--out", str(out)]) == 2
    assert "none.xlsx: annotation workbook not found" in capsys.readouterr().err
    assert main(["annotations", str(wb), "--dataset", "samm", "--out", str(out), "--missing-offset", "x"]) == 2
    assert "--missing-offset 'x'" in capsys.readouterr().err


def test_casme3_part_a_workbook_with_its_bad_row(tmp_path, capsys):
    # The real part A label workbook (replica, fedn.md): 860 rows, row 751 malformed. Row k is
    # subject k mod 94 and video k mod 13, all pairs distinct (94 and 13 coprime): 859 videos.
    wb = write_casme3_labels(tmp_path, casme3_part_a_label_rows())
    out = tmp_path / "c3.csv"
    assert main(["annotations", str(wb), "--dataset", "casme3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == f"casme3: 859 expressions (0 macro, 859 micro), 94 subjects, 859 videos -> {out}"
    assert ("    malformed row dropped: sheet 'label', row 751 (subject spNO.216, video d, onset 3647, apex 2668, "
            "offset 2694): onset 3647 is after apex 2668 and offset 2694: 1 row") in printed.splitlines()
    assert len(read_rows(out)) == 859

    out.unlink()
    assert main(["annotations", str(wb), "--dataset", "casme3", "--out", str(out), "--strict"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"visionattn annotations: error: {wb}, sheet 'label', row 751: onset 3647 is after apex "
                          "2668 and offset 2694 (subject spNO.216, video d")
    assert not out.exists()
