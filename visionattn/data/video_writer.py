"""Frames to an MP4 that web browsers play: H.264 video (yuv420p), AAC audio, through PyAV.

OpenCV's ``VideoWriter`` offers ``mp4v`` (MPEG-4 part 2), which no browser plays, and drops
audio. PyAV's wheel carries FFmpeg with libx264, so :class:`BrowserVideoWriter` writes what a
``<video>`` element plays everywhere: H.264 in yuv420p (4:2:0, the profile browsers decode;
odd frame sizes are padded by one pixel, as 4:2:0 needs even ones), the index at the front of
the file (``+faststart``: playback starts before the whole file is read), and the audio of a
source video, re-encoded as AAC, trimmed to the same stretch as the frames.
"""
from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..utils import UserError, atomic_path

PathLike = Union[str, os.PathLike]

TIME_BASE = Fraction(1, 90000)  # MPEG's 90 kHz clock: exact for 24, 25, 30, 50, 60 and 29.97 fps
PRESET = "veryfast"  # libx264: a few times faster than "medium" at a slightly larger file
CRF = 23  # libx264's default quality


def _av():
    try:
        import av
    except ImportError:
        raise UserError("writing browser-playable video needs PyAV: pip install av") from None
    return av


class BrowserVideoWriter:
    """Write BGR frames to an H.264 MP4 at ``path``, atomically; with ``audio_from``, that
    video's audio from the first frame written to ``end_s`` (seconds from its first frame, as
    :func:`~visionattn.data.frames.iter_timed_frames` counts them; None: to its end) is kept,
    in step with the frames.

    Use as a context manager; on an error inside it nothing is left at ``path``::

        with BrowserVideoWriter("out.mp4", fps=30, size=(640, 480), audio_from="in.mp4") as out:
            for index, seconds, frame in iter_timed_frames("in.mp4"):
                out.write(frame, seconds)

    Args:
        path: the ``.mp4`` to write.
        fps: the nominal frame rate (frames carry their own times in :meth:`write`).
        size: ``(width, height)`` of the frames; frames of another size are resized.
        audio_from: a video file whose first audio stream is kept (None, a frame folder or a
            video without audio, or one FFmpeg cannot open: no audio).
        end_s: where the stretch of ``audio_from`` the frames show ends.
    """

    def __init__(self, path: PathLike, fps: float, size: tuple, audio_from: Optional[PathLike] = None,
                 end_s: Optional[float] = None):
        self.path = Path(path)
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.size = (int(size[0]), int(size[1]))
        if self.size[0] <= 0 or self.size[1] <= 0:
            raise UserError(f"{self.path}: cannot write a {self.size[0]}x{self.size[1]} video")
        self.audio_from = Path(audio_from) if audio_from is not None and Path(audio_from).is_file() else None
        self.end_s = end_s
        self.frames = 0
        self.has_audio = False
        self._origin: Optional[float] = None
        self._last_pts = -1
        self._audio: Optional[_AudioCopy] = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "BrowserVideoWriter":
        av = _av()
        tmp = self._stack.enter_context(atomic_path(self.path, suffix=".mp4"))
        try:
            self._container = av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"})
            self._stack.callback(self._container.close)
            stream = self._container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(100000))
            stream.width, stream.height = (d + d % 2 for d in self.size)
            stream.pix_fmt = "yuv420p"
            stream.time_base = TIME_BASE
            stream.codec_context.time_base = TIME_BASE
            stream.options = {"preset": PRESET, "crf": str(CRF)}
            self._video = stream
            # every stream exists before the first packet (the MP4 header lists them)
            self._audio = _AudioCopy.open(self.audio_from, self._container, self._stack)
            self.has_audio = self._audio is not None
        except Exception as err:  # noqa: BLE001 - FFmpeg's errors vary by platform; one line for the user
            self._stack.__exit__(type(err), err, err.__traceback__)  # removes the temporary file
            raise UserError(f"{self.path}: cannot write an H.264 video here ({type(err).__name__}: {err})") from None
        return self

    def write(self, frame: np.ndarray, seconds: float) -> None:
        """Append ``frame`` (BGR ``uint8`` ``(H, W, 3)``) shown at ``seconds`` on the source's
        clock (the first frame written is the output's time 0)."""
        import cv2

        av = _av()
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        pad_w, pad_h = self._video.width - self.size[0], self._video.height - self.size[1]
        if pad_w or pad_h:
            frame = cv2.copyMakeBorder(frame, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
        if self._origin is None:
            self._origin = float(seconds)
            if self._audio is not None:
                self._audio.span(self._origin, self.end_s)
        # strictly increasing, whatever the source's clock did
        pts = max(int(round((seconds - self._origin) / TIME_BASE)), self._last_pts + 1)
        self._last_pts = pts
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24").reformat(format="yuv420p")
        picture.pts = pts
        picture.time_base = TIME_BASE
        self._container.mux(self._video.encode(picture))
        self.frames += 1
        if self._audio is not None:
            self._audio.copy_until(float(pts * TIME_BASE) + 1.0 / self.fps)

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            try:
                self._container.mux(self._video.encode(None))  # the encoder's delayed frames
                if self._audio is not None:
                    self._audio.finish()
            except BaseException as err:
                self._stack.__exit__(type(err), err, err.__traceback__)  # removes the temporary file
                raise
        # closes the container, then moves the file into place (or removes it after an error)
        return self._stack.__exit__(exc_type, exc, tb)


class _AudioCopy:
    """A source's first audio stream re-encoded as AAC into an output container, a stretch of it
    at a time so that audio and video packets interleave."""

    def __init__(self, source, output):
        av = _av()
        audio = source.streams.audio[0]
        self.rate = audio.codec_context.sample_rate or 48000
        # mono stays mono; anything else becomes stereo (what every browser plays). A layout is
        # named here, as AAC refuses an unordered one ("1 channels") that some files declare.
        channels = len(audio.codec_context.layout.channels) if audio.codec_context.layout else 2
        layout = "mono" if channels == 1 else "stereo"
        self.out = output.add_stream("aac", rate=self.rate)
        self.out.layout = layout
        self.output = output
        self.zero = _first_video_time(source)
        self.chunks = self._resampled(source, audio, av.AudioResampler(format="fltp", layout=layout, rate=self.rate))
        self.begin, self.end = 0.0, None
        self.written = 0
        self.pending = None

    @classmethod
    def open(cls, path: Optional[Path], output, stack: contextlib.ExitStack) -> Optional["_AudioCopy"]:
        """The copier of ``path``'s audio, or None when it has none (or FFmpeg cannot read it)."""
        if path is None:
            return None
        av = _av()
        try:
            source = av.open(str(path))
        except av.FFmpegError:
            return None  # OpenCV read it, FFmpeg cannot: the video is kept without its audio
        stack.callback(source.close)
        return cls(source, output) if source.streams.audio else None

    def span(self, origin_s: float, end_s: Optional[float]) -> None:
        """Keep the source's audio from ``origin_s`` to ``end_s`` (seconds from its first video
        frame); output time 0 is ``origin_s``."""
        self.begin = self.zero + origin_s
        self.end = None if end_s is None else self.zero + end_s

    def copy_until(self, output_s: float) -> None:
        """Encode the kept audio up to ``output_s`` seconds of output time."""
        while True:
            chunk = self.pending if self.pending is not None else next(self.chunks, None)
            self.pending = None
            if chunk is None:
                return
            if chunk.pts is not None and float(chunk.pts * chunk.time_base) - self.begin > output_s:
                self.pending = chunk
                return
            self._encode(chunk)

    def finish(self) -> None:
        self.copy_until(float("inf"))
        self.output.mux(self.out.encode(None))

    def _resampled(self, source, audio, resampler):
        for packet_frame in source.decode(audio):
            yield from resampler.resample(packet_frame)
        yield from resampler.resample(None)

    def _encode(self, chunk) -> None:
        """Encode the part of ``chunk`` inside the kept stretch."""
        av = _av()
        if chunk.pts is None or chunk.time_base is None:
            return
        t0 = float(chunk.pts * chunk.time_base)
        samples = chunk.to_ndarray()  # (channels, n) planar float
        first = max(0, int(round((self.begin - t0) * self.rate)))
        last = samples.shape[1] if self.end is None else min(samples.shape[1], int(round((self.end - t0) * self.rate)))
        if last <= first:
            return
        kept = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, first:last]), format="fltp",
                                          layout=chunk.layout.name)
        kept.sample_rate = self.rate
        kept.pts = self.written
        kept.time_base = Fraction(1, self.rate)
        self.output.mux(self.out.encode(kept))
        self.written += last - first


def _first_video_time(container) -> float:
    """Seconds of a container's first video frame on its clock (0 without video); the
    container is rewound."""
    if not container.streams.video:
        return 0.0
    time = None
    for frame in container.decode(container.streams.video[0]):
        time = frame.time
        break
    container.seek(0)
    return float(time) if time is not None else 0.0
