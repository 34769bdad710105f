"""Per-frame features of every video, cached on disk: frames -> face crops -> frame encoder.

The temporal part of FEDN trains on these features alone, so the expensive part (face
detection and the CNN) runs once per video and pipeline settings. Caches are
memory-mapped, keyed by the settings, written atomically and resumed after an interruption
(:mod:`visionattn.data.cache`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from ..data.cache import ArrayCache, cache_face_rows
from ..data.faces import FacePipeline
from ..utils import UserError
from .encoder_pretraining import EncoderPretraining


@dataclass
class FeatureSettings:
    """How per-frame features are made. Every field is part of the cache key.

    ``backbone``: timm model name of the frozen frame encoder (``resnet18``,
    ``resnet18_mca_e``...); ``checkpoint_path``: its local weights (None: a fixed random
    initialisation from ``seed``, as no weights are ever downloaded); ``face_size``: crop side
    fed to the encoder; ``detect_every``: run the face detector every n frames and track the
    box in between; ``pretrain``: first train the encoder to recognise expressions on the
    training subjects' frames (:mod:`visionattn.spotting.encoder_pretraining`), starting from
    ``checkpoint_path`` or the random initialisation.
    """

    backbone: str = "resnet18"
    checkpoint_path: Optional[str] = None
    face_size: int = 112
    face_margin: float = 0.2
    detect_every: int = 5
    pool_grid: int = 1
    seed: int = 0
    dtype: str = "float16"
    pretrain: Optional[EncoderPretraining] = None

    def key_settings(self) -> dict:
        d = asdict(self)
        # Options at their old defaults leave the key as it was, so existing caches stay valid.
        if d["pool_grid"] == 1:
            del d["pool_grid"]
        if d["pretrain"] is None:
            del d["pretrain"]
        if self.checkpoint_path:  # the file's identity, not just its name
            p = Path(self.checkpoint_path)
            if not p.is_file():
                raise UserError(f"{p}: frame-encoder checkpoint not found")
            d["checkpoint_stat"] = [p.stat().st_size, int(p.stat().st_mtime)]
        return d


class FrameFeatureExtractor:
    """Turns uint8 BGR face crops (k, S, S, 3) into float features (k, D) with a frozen encoder."""

    def __init__(self, settings: FeatureSettings, device: str = "cpu", batch_size: int = 128):
        from ..models.fedn.frame_encoder import FrameEncoder

        torch.manual_seed(settings.seed)  # a random encoder must be the same one every time
        self.encoder = FrameEncoder(settings.backbone, checkpoint_path=settings.checkpoint_path, frozen=True,
                                    image_size=settings.face_size, pool_grid=settings.pool_grid)
        self.encoder.to(device).eval()
        self.batch_size = batch_size
        self.dtype = np.dtype(settings.dtype)

    @property
    def dim(self) -> int:
        return self.encoder.num_features

    @torch.inference_mode()
    def __call__(self, crops: np.ndarray) -> np.ndarray:
        feats = self.encoder.encode_frames(crops, batch_size=self.batch_size)
        return feats.float().cpu().numpy().astype(self.dtype)


def face_pipeline(settings: FeatureSettings) -> FacePipeline:
    """A fresh face pipeline (one per video) making the crops that ``settings`` describe."""
    return FacePipeline(size=settings.face_size, margin=settings.face_margin, detect_every=settings.detect_every)


def video_id(subject: str, video: str) -> str:
    return f"{subject}_{video}"


def extract_features(
    sources: Dict[str, str], cache_root: Path, settings: FeatureSettings, device: str = "cpu",
    progress: bool = True,
) -> ArrayCache:
    """Cache features for ``sources`` (video id -> frame folder or video file); returns the cache.

    Videos already cached are skipped; an interrupted video resumes at its last chunk.
    """
    cache = ArrayCache(cache_root, settings.key_settings())
    todo = {vid: src for vid, src in sources.items() if not cache.exists(vid)}
    if not todo:
        return cache
    extractor = FrameFeatureExtractor(settings, device=device)
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc="frame features", unit="video", disable=not progress)
    for vid, src in todo.items():
        _, report = cache_face_rows(src, cache, vid, face_pipeline(settings), extractor, (extractor.dim,), extractor.dtype)
        if not report.face_found:
            bar.write(f"warning: {src}: no face found; features come from a centred crop")
        bar.update(1)
    bar.close()
    return cache
