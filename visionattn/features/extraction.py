"""Per-frame features of every video, cached on disk: frames -> face crops -> frame encoder.

The temporal part of FEDN trains on these features alone, so the expensive part (face
detection and the CNN) runs once per video and pipeline settings. Caches are
memory-mapped, keyed by the settings, written atomically and resumed after an interruption
(:mod:`visionattn.data.cache`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np
import torch

from ..data.cache import ArrayCache, cache_face_rows
from ..models.fedn.frame_encoder import FrameEncoder
from .settings import FeatureSettings


class FrameFeatureExtractor:
    """Turns uint8 BGR face crops (k, S, S, 3) into float features (k, D) with a frozen encoder."""

    def __init__(self, settings: FeatureSettings, device: str = "cpu", batch_size: int = 128):
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
        _, report = cache_face_rows(src, cache, vid, settings.face_pipeline(), extractor, (extractor.dim,), extractor.dtype)
        if not report.face_found:
            bar.write(f"warning: {src}: no face found; features come from a centred crop")
        bar.update(1)
    bar.close()
    return cache
