"""Lightning DataModule: an expression dataset's per-frame feature caches, split by subject.

Training draws random windows of ``window`` frames from the training subjects' videos; the
validation subjects (drawn from the training subjects, never the test subject) and the test
subjects are evaluated on whole videos, since the temporal model's cost is linear in length.

Frame numbers: annotations use the dataset's own numbering (CAS(ME)^2 from 1, CAS(ME)^3 from
anywhere, with gaps). Feature rows are in reading order; each video keeps the frame number
of every row, so targets and predictions convert both ways exactly.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from ..data.annotations import loso_folds, validation_subjects
from ..data.cache import ArrayCache, settings_key
from ..data.datasets import load_table
from ..data.identifiers import annotated_frame_numbers, cut_rows, rows_of, video_id
from ..features.contract import FeatureContract
from ..features.extraction import extract_features
from ..features.front_end import face_spans
from ..features.pretraining import check_not_trained_on, encoder_key, pretrain_frame_encoder
from ..features.settings import FeatureSettings
from ..models.fedn.config import DEFAULT_WINDOW, EMOTION_NAMES, TYPE_NAMES
from ..utils import UserError, preserved_random_state

IGNORE_EMOTION = -1  # FEDN: spotting target without emotion loss (CAS(ME)^3 macro rows)


@dataclass
class VideoRecord:
    """One video: its features (T, D) memmap, frame numbers (T,) and ground truth in rows."""

    subject: str
    video: str
    features: np.ndarray
    frame_numbers: np.ndarray
    segments: np.ndarray   # (N, 2) float rows, inclusive [onset, offset]
    types: np.ndarray      # (N,) 0 micro, 1 macro
    emotions: np.ndarray   # (N,) index into EMOTION_NAMES or IGNORE_EMOTION
    face_spans: Optional[List[Tuple[int, int]]] = None  # rows with a tracked face, no cut inside (landmarks)


class TrainWindows(Dataset):
    """``length`` random windows per epoch, each from a video chosen in proportion to its length.

    Stream dropout: with probability ``stream_dropout`` a window keeps one of its feature
    ``streams`` (column ranges; the one kept chosen uniformly) and the others are zeroed, as a
    video whose other streams carry no signal, so that no stream can stand in for the rest.
    """

    def __init__(self, videos: List[VideoRecord], window: int, length: int,
                 streams: Sequence[Tuple[int, int]] = (), stream_dropout: float = 0.0):
        self.videos, self.window, self.length = videos, window, length
        self.streams, self.stream_dropout = list(streams), stream_dropout
        sizes = np.array([len(v.features) for v in videos], dtype=float)
        self.p = sizes / sizes.sum()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        # torch's generator: seeded by seed_everything (per worker too), new windows each epoch
        rng = np.random.default_rng(int(torch.randint(2**62, ())))
        v = self.videos[rng.choice(len(self.videos), p=self.p)]
        n = len(v.features)
        start = int(rng.integers(0, max(1, n - self.window + 1)))
        end = min(n, start + self.window)
        seg = v.segments - start
        inside = np.minimum(seg[:, 1], end - start - 1) - np.maximum(seg[:, 0], 0) + 1
        # keep expressions with most of their frames in the window, clipped to it
        keep = inside >= 0.5 * (seg[:, 1] - seg[:, 0] + 1)
        item = _item(v, start, end, np.clip(seg[keep], 0, end - start - 1), v.types[keep], v.emotions[keep])
        if len(self.streams) > 1 and rng.random() < self.stream_dropout:
            kept = int(rng.integers(len(self.streams)))
            for i, (lo, hi) in enumerate(self.streams):
                if i != kept:
                    item["features"][:, lo:hi] = 0
        return item


class WholeVideos(Dataset):
    def __init__(self, videos: List[VideoRecord]):
        self.videos = videos

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> dict:
        v = self.videos[i]
        return _item(v, 0, len(v.features), v.segments, v.types, v.emotions)


def _item(v: VideoRecord, start: int, end: int, segments, types, emotions) -> dict:
    return {
        # a copy (np.array), never a view of the read-only cache, whatever its dtype
        "features": torch.from_numpy(np.array(v.features[start:end], dtype=np.float32)),
        "segments": torch.as_tensor(segments, dtype=torch.float32).reshape(-1, 2),
        "types": torch.as_tensor(types, dtype=torch.long),
        "emotions": torch.as_tensor(emotions, dtype=torch.long),
        "subject": v.subject, "video": v.video, "start": start,
    }


def collate(items: List[dict]) -> dict:
    """Pad features to the longest item: features (B, T, D), mask (B, T) True on real frames."""
    t = max(len(x["features"]) for x in items)
    d = items[0]["features"].shape[1]
    feats = torch.zeros(len(items), t, d)
    mask = torch.zeros(len(items), t, dtype=torch.bool)
    for i, x in enumerate(items):
        feats[i, : len(x["features"])] = x["features"]
        mask[i, : len(x["features"])] = True
    gt = [{"segments": x["segments"], "types": x["types"], "emotions": x["emotions"]} for x in items]
    meta = [{"subject": x["subject"], "video": x["video"], "start": x["start"]} for x in items]
    return {"features": feats, "mask": mask, "gt": gt, "meta": meta}


class ExpressionDataModule(L.LightningDataModule):
    """Per-frame feature caches of an expression dataset, split into train / val / test subjects.

    Args:
        root: dataset folder (CAS(ME)^2, CAS(ME)^3 part A, or ``visionattn synth`` output).
        dataset: ``casme2``, ``casme3`` or ``synthetic`` (CAS(ME)^2 layout).
        cache_root: where per-frame feature caches go (keyed by ``features`` settings).
        features: how per-frame features are made (face crops + frozen encoder).
        fold: leave-one-subject-out fold index (subjects sorted); or
        test_subjects: explicit held-out subjects (leave-subjects-out); the remaining subjects
            train, and ``val_subjects`` of them are set aside for model selection.
        window: frames per training window; windows_per_epoch: training windows per epoch.
        stream_dropout: the fraction of training windows that keep one feature stream only
            (:class:`TrainWindows`); it needs two or more streams.
        fps: the frame rate the model sees (FEDN's windows are in frames). Videos at another
            rate (SAMM-LV's 200 fps) are resampled to it when their features are made, and every
            feature row keeps the number of its source frame, so annotations map onto rows and
            predictions back onto the dataset's own frame numbers. ``visionattn detect``
            resamples any video to it too.
    """

    def __init__(
        self,
        root: str,
        dataset: str = "synthetic",
        cache_root: str = "outputs/cache",
        features: FeatureSettings = FeatureSettings(),
        fold: Optional[int] = None,
        test_subjects: Optional[List[str]] = None,
        val_subjects: int = 2,
        split_seed: int = 0,
        window: int = DEFAULT_WINDOW,
        windows_per_epoch: int = 256,
        stream_dropout: float = 0.0,
        batch_size: int = 4,
        num_workers: int = 0,
        missing_offset: Union[str, int] = "apex",
        feature_device: str = "cpu",
        fps: float = 30.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.root, self.dataset, self.cache_root = root, dataset, Path(cache_root)
        self.features_settings = features
        self.fold, self.test_subject_list = fold, test_subjects
        self.val_count, self.split_seed = val_subjects, split_seed
        self.window, self.windows_per_epoch = window, windows_per_epoch
        if not 0 <= stream_dropout <= 1:
            raise UserError(f"data.stream_dropout {stream_dropout}: must be in [0, 1]")
        self.stream_dropout = stream_dropout
        self.batch_size, self.num_workers = batch_size, num_workers
        self.missing_offset, self.feature_device = missing_offset, feature_device
        if fps <= 0:
            raise UserError(f"data.fps {fps}: must be > 0")
        self.fps = fps
        self.frame_feature_settings: Optional[FeatureSettings] = None  # resolved in setup
        self.contract: Optional[FeatureContract] = None  # resolved in setup, from the features themselves
        self.table: Optional[pd.DataFrame] = None
        self.splits: Dict[str, List[str]] = {}
        self.videos: Dict[str, List[VideoRecord]] = {}

    # ---------------------------------------------------------------- preparation
    def feature_sources(self, table: pd.DataFrame) -> Dict[str, Tuple[str, float]]:
        """Video id -> (frame folder or video file, the dataset's frame rate) of every video."""
        first = table.drop_duplicates(["subject", "video"])
        return {video_id(s, v): (src, float(fps))
                for s, v, src, fps in zip(first["subject"], first["video"], first["source"], first["fps"])}

    def prepare_data(self) -> None:
        """Extract per-frame features for every video, after pretraining the frame encoder on the
        training subjects if ``features.pretrain`` asks for it (once; rank 0 only under DDP).

        The random streams are left as they were: this work happens only where a cache is cold,
        and a training must draw the same windows (and FEDN the same initial weights) whether its
        features were made just now or found cached."""
        with preserved_random_state():
            self.prepare_features()

    def prepare_features(self, videos: Optional[Sequence[str]] = None, progress: bool = True) -> None:
        """:meth:`prepare_data` for the video ids ``videos`` only (default: all), so that several
        processes can share a dataset (``visionattn features``)."""
        table = load_table(self.dataset, self.root, self.missing_offset)
        settings = self.frame_features(table, self.split(table), prepare=True)
        sources = self.feature_sources(table)
        if videos is not None:
            sources = {vid: sources[vid] for vid in videos}
        extract_features(sources, self.cache_root, FeatureContract(settings, self.fps), device=self.feature_device,
                         progress=progress)

    def frame_features(self, table: pd.DataFrame, splits: Dict[str, List[str]], prepare: bool) -> FeatureSettings:
        """The settings this split's features are made with. With ``features.pretrain``, that is
        the encoder pretrained on ``splits['train']`` only (trained now if ``prepare``), so the
        validation and test subjects never shape the features; an encoder given by
        ``checkpoint_path`` is refused if its record shows it learned from them."""
        settings = self.features_settings
        held_out = splits["val"] + splits["test"]
        if settings.pretrain is None:
            if settings.checkpoint_path:
                check_not_trained_on(settings.checkpoint_path, self.root, held_out)
            return settings
        key = settings_key(encoder_key(settings, self.root, splits["train"], splits["val"]))
        path = (self.cache_root / "encoders" / key / "encoder.pth").resolve()
        if prepare:
            pretrain_frame_encoder(table, splits["train"], splits["val"], settings, path, self.cache_root, self.root,
                                   fps=self.fps, device=self.feature_device)
        elif not path.is_file():
            raise UserError(f"{path}: frame encoder not pretrained yet (prepare_data did not run?)")
        return replace(settings, checkpoint_path=str(path), pretrain=None)

    def split(self, table: pd.DataFrame) -> Dict[str, List[str]]:
        subjects = sorted(table["subject"].unique())
        if self.fold is not None:
            folds = loso_folds(table, self.val_count, self.split_seed)
            if not 0 <= self.fold < len(folds):
                raise UserError(f"fold {self.fold}: the dataset has {len(folds)} subjects (folds 0..{len(folds) - 1})")
            f = folds[self.fold]
            return {"train": list(f.train), "val": list(f.val), "test": [f.test]}
        test = list(self.test_subject_list or [])
        unknown = [s for s in test if s not in subjects]
        if unknown:
            raise UserError(f"test_subjects {unknown} are not in the dataset (subjects: {subjects})")
        rest = [s for s in subjects if s not in test]
        val = validation_subjects(rest, self.val_count, self.split_seed)
        return {"train": [s for s in rest if s not in val], "val": val, "test": test}

    def setup(self, stage: Optional[str] = None) -> None:
        if self.table is not None:
            return
        self.table = load_table(self.dataset, self.root, self.missing_offset)
        self.splits = self.split(self.table)
        settings = self.frame_features(self.table, self.splits, prepare=False)
        self.frame_feature_settings = settings  # the encoder these features came from, for the detector record
        cache = ArrayCache(self.cache_root, FeatureContract(settings, self.fps).cache_key())
        by_video = {}
        for (subject, video), rows in self.table.groupby(["subject", "video"], sort=True):
            vid = video_id(subject, video)
            if not cache.exists(vid):
                raise UserError(f"{cache.path(vid)}: features not extracted (prepare_data did not run?)")
            meta = cache.load_meta(vid)
            frame_numbers = annotated_frame_numbers(meta, int(rows["first_frame"].iloc[0]))
            on, off = rows_of(frame_numbers, rows["onset"].to_numpy()), rows_of(frame_numbers, rows["offset"].to_numpy())
            features = cache.load(vid)
            spans = None
            if settings.front_end == "landmarks":  # its rows lead with the face flag
                spans = face_spans(np.asarray(features[:, 0]) > 0.5, cut_rows(meta))
            by_video[(subject, video)] = VideoRecord(
                subject, video, features, frame_numbers, face_spans=spans,
                segments=np.stack([on, off], 1).astype(np.float32),
                types=np.array([TYPE_NAMES.index(t) for t in rows["type"]]),
                emotions=np.array([EMOTION_NAMES.index(e) if e in EMOTION_NAMES else IGNORE_EMOTION
                                   for e in rows["emotion"]]),
            )
        self.videos = {name: [r for (s, _), r in by_video.items() if s in subs] for name, subs in self.splits.items()}
        if not self.videos["train"]:
            raise UserError(f"no training videos (splits: {self.splits})")
        self.contract = FeatureContract.for_rows(settings, self.fps, self.feature_dim)

    def record(self, subject: str, video: str) -> VideoRecord:
        for records in self.videos.values():
            for r in records:
                if r.subject == subject and r.video == video:
                    return r
        raise KeyError((subject, video))

    @property
    def feature_dim(self) -> int:
        return int(self.videos["train"][0].features.shape[1])

    # ---------------------------------------------------------------- loaders
    def train_dataloader(self) -> DataLoader:
        streams = self.contract.stream_columns().values()
        ds = TrainWindows(self.videos["train"], self.window, self.windows_per_epoch, streams, self.stream_dropout)
        return DataLoader(ds, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers,
                          collate_fn=collate, drop_last=True)

    def _whole(self, split: str) -> DataLoader:
        return DataLoader(WholeVideos(self.videos[split]), batch_size=1, num_workers=self.num_workers,
                          collate_fn=collate)

    def val_dataloader(self) -> DataLoader:
        return self._whole("val" if self.videos["val"] else "train")

    def test_dataloader(self) -> DataLoader:
        return self._whole("test")
