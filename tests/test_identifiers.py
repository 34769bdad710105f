"""Annotation frame numbers to feature rows."""
import numpy as np

from visionattn.data.identifiers import rows_of


def test_rows_of_takes_the_nearest_row_earlier_on_a_tie():
    # 200 fps source frames kept at 30 model steps a second: every 6.67th frame (rounded)
    frame_numbers = np.round(1 + np.arange(40) * 200 / 30).astype(np.int64)
    frames = np.arange(0, int(frame_numbers[-1]) + 20)
    # independent statement: the row minimising |frame - frame number|, the first such row on a tie
    expected = np.array([int(np.argmin(np.abs(frame_numbers - f))) for f in frames])
    assert np.array_equal(rows_of(frame_numbers, frames), expected)


def test_rows_of_hand_cases():
    fn = np.array([1, 8, 15, 21])
    assert rows_of(fn, np.array([1, 4, 5, 8, 11, 12, 18, 0, 99])).tolist() == [0, 0, 1, 1, 1, 2, 2, 0, 3]
