"""``visionattn detect --report`` (issue 25): the browser-playable video (H.264, audio kept), the
HTML page (no network; clickable bars where the timeline draws them), and the page in a real
browser: headless Chromium, driven by selenium, plays the video, moves the playhead, and seeks
to an expression's onset when its bar is clicked. The browser test's screenshot is kept in
``$VISIONATTN_TEST_ARTIFACTS`` (default ``outputs/test-artifacts/``).

The browser is Debian's ``chromium`` with its ``chromedriver`` (``tools/install_browser.sh``);
the browser test is skipped, saying so, where they are missing.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from visionattn.inference.report import IndexEntry, write_index, write_report, write_report_video
from visionattn.inference.result import DetectedInterval, VideoResult
from visionattn.inference.signals import TimelineSignals
from visionattn.inference.timeline import AXES_RECT, time_extent

from media import write_video_with_tone

ROOT = Path(__file__).resolve().parents[1]
W, H, FPS, N = 160, 120, 25.0, 100  # 4 s
TONE = (1.5, 1.7)  # seconds of the source's 1 kHz tone
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("VISIONATTN_TEST_ARTIFACTS", ROOT / "outputs" / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """4 s of the astronaut panning, at 25 fps, with a tone from 1.5 s to 1.7 s."""
    base = cv2.resize(cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR), (W, H), interpolation=cv2.INTER_AREA)
    frames = [np.roll(base, 2 * k, axis=1) for k in range(N)]
    return write_video_with_tone(tmp_path_factory.mktemp("src") / "talk.mkv", frames, FPS, TONE)


def _result(source: Path, part=None) -> VideoResult:
    intervals = [DetectedInterval(21, 25, 0.8, 0.96, "micro", "surprise", 0.62),
                 DetectedInterval(51, 66, 2.0, 2.6, "macro", "positive", 0.91)]
    return VideoResult(video=str(source), fps=FPS, frame_count=N, duration_s=N / FPS, width=W, height=H,
                       face_found=True, intervals=intervals, frames_without_face=[[90, 95]],
                       thresholds={"micro": 0.5, "macro": 0.5}, method="fedn", model={"name": "FEDN"},
                       frame_numbering="1-based frame numbers of the video file", first_frame=1, part_s=part)


def _signals() -> TimelineSignals:
    times = np.arange(120) / 30.0
    score = 0.2 + 0.7 * np.exp(-((times - 2.3) / 0.3) ** 2)
    probs = np.full((120, 7), 1 / 7)
    return TimelineSignals(times_s=times, score=score, score_label="FEDN score", score_threshold={"macro": 0.5},
                           emotion_probs=probs, emotion_names=("angry", "disgust", "fear", "happy", "sad",
                                                               "surprise", "neutral"))


def _audio_envelope(path: Path):
    """(RMS per 10 ms window, window length in s) of a file's audio, decoded by PyAV."""
    import av

    with av.open(str(path)) as container:
        rate = container.streams.audio[0].codec_context.sample_rate
        samples = np.concatenate([f.to_ndarray().reshape(-1, f.samples).mean(axis=0)
                                  for f in container.decode(audio=0)])
    hop = rate // 100
    windows = samples[: len(samples) // hop * hop].reshape(-1, hop)
    return np.sqrt((windows.astype(np.float64) ** 2).mean(axis=1)), hop / rate, len(samples) / rate


def _page_data(page: str) -> dict:
    return json.loads(page.split('id="report-data">')[1].split("</script>")[0])


# ---------------------------------------------------------------- the video
def test_report_video_is_h264_with_the_parts_audio_in_step(tmp_path, source):
    """The part 1.0 s .. 2.5 s: 37.5 s of frames at 25 fps, frames 25..62 (0-based positions);
    the tone (1.5 s .. 1.7 s in the source) sits at 0.5 s .. 0.7 s of the output."""
    import av

    out = tmp_path / "talk_report.mp4"
    write_report_video(source, _result(source, part=[1.0, 2.5]), out)
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.name, video.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert container.streams.audio[0].codec_context.name == "aac"
        assert sum(1 for _ in container.decode(video=0)) == 38
    envelope, window_s, audio_s = _audio_envelope(out)
    assert audio_s == pytest.approx(1.5, abs=0.05)
    loud = np.flatnonzero(envelope > envelope.max() / 2) * window_s
    assert loud[0] == pytest.approx(TONE[0] - 1.0, abs=0.03) and loud[-1] == pytest.approx(TONE[1] - 1.0 - 0.01, abs=0.03)


def test_odd_frame_sizes_are_padded_for_4_2_0(tmp_path):
    import av

    from visionattn.data.video_writer import BrowserVideoWriter

    with BrowserVideoWriter(tmp_path / "odd.mp4", 25, (75, 51)) as writer:
        for k in range(5):
            writer.write(np.full((51, 75, 3), 40 * k, np.uint8), k / 25)
    with av.open(str(tmp_path / "odd.mp4")) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(frames) == 5 and frames[0].shape == (52, 76, 3)
    assert abs(int(frames[3][25, 37, 0]) - 120) <= 6  # the picture itself: the grey level, through 4:2:0 and back


# ---------------------------------------------------------------- the page
def test_report_page_is_self_contained_and_bars_sit_where_the_timeline_draws_them(tmp_path, source):
    result = _result(source)
    video = tmp_path / "talk_report.mp4"
    video.write_bytes(b"")  # the page only refers to it
    write_report(result, tmp_path / "talk_report.html", video)  # no signals: the intervals panel alone
    page = (tmp_path / "talk_report.html").read_text()
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing from the network
    assert 'src="talk_report.mp4"' in page
    data = _page_data(page)
    # the timeline's documented geometry: time t at (AXES_RECT[0] + AXES_RECT[2] * t / extent) of the width
    extent = time_extent(result)
    for interval, (left, top, width, height) in zip(result.intervals, data["bars"]):
        assert left == pytest.approx(AXES_RECT[0] + AXES_RECT[2] * interval.onset_s / extent, abs=1e-3)
        assert left + width == pytest.approx(AXES_RECT[0] + AXES_RECT[2] * interval.offset_s / extent, abs=1e-3)
        assert AXES_RECT[1] < 1 - top - height < 1 - top < AXES_RECT[1] + AXES_RECT[3]
    micro, macro = data["bars"]
    assert micro[1] > macro[1]  # the macro lane is drawn above the micro lane
    assert data["videoStart"] == 0.0 and data["axis"] == [0.0, pytest.approx(extent)]


def test_index_page_counts_and_links(tmp_path, source):
    entries = [IndexEntry("talk", str(source), _result(source), page="talk_report.html"),
               IndexEntry("broken", "/data/broken.mp4", error="not a video or corrupt")]
    write_index(entries, tmp_path / "index.html", pooled_csv=tmp_path / "detections.csv")
    page = (tmp_path / "index.html").read_text()
    assert '<a href="talk_report.html">talk</a>' in page and 'href="detections.csv"' in page
    assert "2 videos: 1 micro and 1 macro expressions; 1 failed." in page
    row = page.split('talk</a>')[1].split("</tr>")[0]
    assert re.findall(r"<td>(\d+)</td>", row) == ["1", "1"]  # micro, macro
    assert "failed: not a video or corrupt" in page


# ---------------------------------------------------------------- in a browser
def _browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("no /usr/bin/chromium and /usr/bin/chromedriver: run tools/install_browser.sh")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium missing: run tools/install_browser.sh")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--autoplay-policy=no-user-gesture-required",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1500,1300"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def _wait(condition, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_report_in_a_real_browser_plays_and_seeks(tmp_path, source):
    from selenium.webdriver.common.by import By

    result = _result(source)
    video = tmp_path / "talk_report.mp4"
    write_report_video(source, result, video)
    write_report(result, tmp_path / "talk_report.html", video, signals=_signals())
    data = _page_data((tmp_path / "talk_report.html").read_text())
    driver = _browser()
    try:
        driver.get((tmp_path / "talk_report.html").as_uri())
        player = driver.find_element(By.ID, "video")
        prop = lambda name: driver.execute_script(f"return arguments[0].{name}", player)  # noqa: E731
        _wait(lambda: prop("readyState") >= 4 or prop("error"), what="the video to load")
        assert prop("error") is None and prop("duration") == pytest.approx(N / FPS, abs=0.05)

        # plays, and the playhead follows the clock
        driver.execute_async_script("arguments[0].play().then(arguments[1], arguments[1])", player)
        _wait(lambda: prop("currentTime") > 0.5, what="playback to advance")
        driver.execute_script("arguments[0].pause()", player)
        now = prop("currentTime")
        playhead = driver.find_element(By.ID, "playhead")
        left = float(playhead.value_of_css_property("left").rstrip("px")) / \
            driver.find_element(By.ID, "timeline").size["width"]
        plot_left, _, plot_width, _ = data["plot"]
        t0, t1 = data["axis"]
        assert left == pytest.approx(plot_left + plot_width * (now - t0) / (t1 - t0), abs=0.004)
        assert driver.execute_script("return arguments[0].webkitAudioDecodedByteCount", player) > 0  # audio kept

        # clicking the macro bar seeks to its onset, and its row lights up
        macro = result.intervals[1]
        driver.find_element(By.ID, "bar-1").click()
        _wait(lambda: abs(prop("currentTime") - macro.onset_s) < 0.02, what="the seek to the macro onset")
        assert "active" in driver.find_element(By.ID, "row-1").get_attribute("class")
        # so does the micro one's row in the table
        driver.find_element(By.CSS_SELECTOR, "#row-0 button.seek").click()
        _wait(lambda: abs(prop("currentTime") - result.intervals[0].onset_s) < 0.02, what="the seek to the micro onset")

        driver.find_element(By.ID, "bar-1").click()
        _wait(lambda: abs(prop("currentTime") - macro.onset_s) < 0.02, what="the seek back")
        driver.execute_script("window.scrollTo(0, 0)")
        shot = artifacts_dir() / "detect_report_browser.png"
        driver.save_screenshot(str(shot))
        print(f"screenshot: {shot}")
        assert shot.stat().st_size > 10_000
    finally:
        driver.quit()


def test_report_of_a_part_seeks_on_the_parts_clock(tmp_path, source):
    """The video of ``--start 1 --end 3.5`` starts at frame 25 (1.0 s): an onset at 2.0 s is its
    1.0 s."""
    from selenium.webdriver.common.by import By

    result = _result(source, part=[1.0, 3.5])
    video = tmp_path / "part_report.mp4"
    write_report_video(source, result, video)
    write_report(result, tmp_path / "part_report.html", video, video_start_s=1.0)
    driver = _browser()
    try:
        driver.get((tmp_path / "part_report.html").as_uri())
        player = driver.find_element(By.ID, "video")
        prop = lambda name: driver.execute_script(f"return arguments[0].{name}", player)  # noqa: E731
        _wait(lambda: prop("readyState") >= 4, what="the video to load")
        assert prop("duration") == pytest.approx(2.5, abs=0.05)
        driver.find_element(By.ID, "bar-1").click()
        _wait(lambda: abs(prop("currentTime") - 1.0) < 0.02, what="the seek to 2.0 s - 1.0 s")
    finally:
        driver.quit()

